"""An AIP-151 operations server built on Google's own generated code, not
tower-lro's: the layer's ground truth in CI.

gRPC: a grpcio servicer on googleapis-common-protos'
``google.longrunning.operations_pb2_grpc.OperationsServicer`` (grpcio and
the generated ``operations_pb2`` decode every GetOperation and
CancelOperation), plus CloudDeploy's ``CreateRelease`` answering a not-done
``google.longrunning.Operation``.

REST: a request is served only if google-api-core's own operations REST
transport (``google.api_core.operations_v1``), asked to send GetOperation or
CancelOperation for the name in the path, would send that same method to
that same path; ``POST /v1/projects/p/locations/l/jobs`` starts one.

Every request is logged as decoded; ``GET /__log`` returns the log as JSON.

Usage: python operations_server.py --rest-port N --grpc-port M
"""

import argparse
import json
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import grpc
from google.api_core.operations_v1.transports.rest import OperationsRestTransport
from google.auth.credentials import AnonymousCredentials
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import empty_pb2, json_format
from google.rpc import code_pb2, status_pb2

LOCK = threading.Lock()
LOG = []
OPS = {}


def log(entry):
    with LOCK:
        LOG.append(entry)


def start(prefix):
    with LOCK:
        name = f"{prefix}/operations/op-{len(OPS) + 1}"
        OPS[name] = operations_pb2.Operation(name=name, done=False)
        return OPS[name]


def cancel(name):
    with LOCK:
        op = OPS.get(name)
        if op is None:
            return False
        if not op.done:
            op.done = True
            op.error.CopyFrom(status_pb2.Status(code=code_pb2.CANCELLED, message="cancelled"))
        return True


class Operations(operations_pb2_grpc.OperationsServicer):
    def GetOperation(self, request, context):
        log({"wire": "grpc", "method": "GetOperation", "type": request.DESCRIPTOR.full_name,
             "name": request.name})
        with LOCK:
            op = OPS.get(request.name)
        if op is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such operation")
        return op

    def CancelOperation(self, request, context):
        log({"wire": "grpc", "method": "CancelOperation", "type": request.DESCRIPTOR.full_name,
             "name": request.name, "fields": [f.name for f, _ in request.ListFields()]})
        if not cancel(request.name):
            context.abort(grpc.StatusCode.NOT_FOUND, "no such operation")
        return empty_pb2.Empty()


def create_release(raw, context):
    log({"wire": "grpc", "method": "CreateRelease"})
    return start("projects/p/locations/l")


class Capture:
    """A requests-like session that records what the transport would send."""

    def __init__(self):
        self.sent = None

    def _send(self, method, url, **_):
        self.sent = (method.upper(), url)
        class Response:
            status_code = 200
            content = b'{"name": "x"}'
            text = '{"name": "x"}'
        return Response()

    def get(self, url, **kw):
        return self._send("get", url, **kw)

    def post(self, url, **kw):
        return self._send("post", url, **kw)


def google_route(kind, name):
    """(method, path) google-api-core's REST transport sends for `kind` of `name`."""
    transport = OperationsRestTransport(host="h", credentials=AnonymousCredentials(), url_scheme="http")
    session = Capture()
    transport._session = session
    if kind == "get":
        try:
            transport._get_operation(operations_pb2.GetOperationRequest(name=name))
        except Exception:  # the fake answer may not parse; the route is captured first
            pass
    else:
        transport._cancel_operation(operations_pb2.CancelOperationRequest(name=name))
    method, url = session.sent
    return method, url.split("://h", 1)[1]


class Rest(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def do_GET(self):
        if self.path == "/__log":
            with LOCK:
                return self.answer(200, LOG)
        name = unquote(self.path[len("/v1/"):]) if self.path.startswith("/v1/") else ""
        routed = name and google_route("get", name) == ("GET", self.path)
        log({"wire": "rest", "method": "GET", "path": self.path, "name": name, "google_route": bool(routed)})
        with LOCK:
            op = OPS.get(name)
        if not routed or op is None:
            return self.answer(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
        return self.answer(200, json_format.MessageToDict(op))

    def do_POST(self):
        body = self.body()
        if self.path == "/v1/projects/p/locations/l/jobs":
            log({"wire": "rest", "method": "POST", "path": self.path, "start": True})
            return self.answer(200, json_format.MessageToDict(start("projects/p/locations/l")))
        name = unquote(self.path[len("/v1/"):-len(":cancel")]) if self.path.endswith(":cancel") else ""
        routed = name and google_route("cancel", name) == ("POST", self.path)
        log({"wire": "rest", "method": "POST", "path": self.path, "name": name, "google_route": bool(routed),
             "body": body.decode("latin-1"), "content_length": self.headers.get("content-length")})
        if not routed or not cancel(name):
            return self.answer(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
        return self.answer(200, {})

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rest-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    args = parser.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    operations_pb2_grpc.add_OperationsServicer_to_server(Operations(), server)
    deploy = grpc.method_handlers_generic_handler(
        "google.cloud.deploy.v1.CloudDeploy",
        {"CreateRelease": grpc.unary_unary_rpc_method_handler(
            create_release,
            request_deserializer=lambda raw: raw,
            response_serializer=operations_pb2.Operation.SerializeToString)},
    )
    server.add_generic_rpc_handlers((deploy,))
    server.add_insecure_port(f"127.0.0.1:{args.grpc_port}")
    server.start()
    rest = ThreadingHTTPServer(("127.0.0.1", args.rest_port), Rest)
    print("listening", flush=True)
    rest.serve_forever()


if __name__ == "__main__":
    main()
