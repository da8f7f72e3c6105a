"""google-api-core's REST operations client against the embedded AIP-151 server.

Run by `.ci/run`, which starts `cargo run --example operations_server --features
testing -- --addr 127.0.0.1:PORT` and sets TOWER_LRO_ADDR=127.0.0.1:PORT.

Every operation is decoded by the client library itself (proto3 JSON into
`google.longrunning.Operation`, unknown fields rejected), and its `metadata` and
`response` unpacked from their `Any` as `google.protobuf.Struct`.
"""

import concurrent.futures
import os
import uuid

import pytest
import requests
from google.api_core import exceptions, operation, operations_v1
from google.auth.credentials import AnonymousCredentials
from google.longrunning import operations_pb2
from google.protobuf import json_format, struct_pb2
from google.rpc import code_pb2

ADDR = os.environ["TOWER_LRO_ADDR"]


@pytest.fixture(scope="module")
def client():
    # The scheme goes in `host`: this version's OperationsRestTransport does
    # not pass `url_scheme` on to its base class, which defaults to https.
    transport = operations_v1.OperationsRestTransport(
        host=f"http://{ADDR}", credentials=AnonymousCredentials()
    )
    return operations_v1.AbstractOperationsClient(transport=transport)


@pytest.fixture()
def parent():
    """A location of its own for each test, so lists see only its operations."""
    return f"projects/py-{uuid.uuid4().hex[:12]}/locations/l"


def start(parent, duration_ms):
    """Starts an operation the way an API method would (a POST on a collection)."""
    answer = requests.post(
        f"http://{ADDR}/v1/{parent}/jobs", json={"durationMs": duration_ms}, timeout=10
    )
    answer.raise_for_status()
    return json_format.Parse(answer.content, operations_pb2.Operation())


def unpack(any_pb):
    """The Struct inside an Any, as a dict."""
    assert any_pb.type_url == "type.googleapis.com/google.protobuf.Struct"
    value = struct_pb2.Struct()
    assert any_pb.Unpack(value)
    return json_format.MessageToDict(value)


def names(ops):
    return [op.name for op in ops]


# --- GetOperation -------------------------------------------------------------


def test_get_running_operation_has_progress_metadata(client, parent):
    started = start(parent, 60_000)
    op = client.get_operation(started.name)
    assert op.name == started.name and not op.done
    metadata = unpack(op.metadata)
    assert 0 <= metadata["progressPercent"] < 100
    assert metadata["target"] == f"{parent}/jobs"
    assert not op.HasField("response") and not op.HasField("error")


def test_get_succeeded_operation_has_struct_response(client, parent):
    started = start(parent, 0)
    op = client.get_operation(started.name)
    assert op.done
    assert unpack(op.response) == {"target": f"{parent}/jobs", "state": "SUCCEEDED"}
    assert unpack(op.metadata)["progressPercent"] == 100


def test_get_unknown_operation_is_not_found(client, parent):
    with pytest.raises(exceptions.NotFound):
        client.get_operation(f"{parent}/operations/nope")


# --- ListOperations -------------------------------------------------------------


def test_list_pages_through_every_operation(client, parent):
    started = [start(parent, 60_000).name for _ in range(5)]
    pager = client.list_operations(parent, "", page_size=2)
    pages = list(pager.pages)
    assert [len(p.operations) for p in pages] == [2, 2, 1]
    assert [op.name for p in pages for op in p.operations] == started
    assert names(client.list_operations(parent, "")) == started


@pytest.mark.parametrize(
    "filter_,want",
    [
        ("done=true", "done"),
        ("done = true", "done"),
        ("done", "done"),
        ("done=false", "running"),
        ("done = false", "running"),
        ("NOT done", "running"),
        ("done != true", "running"),
        ("", "all"),
    ],
)
def test_list_filters_on_done(client, parent, filter_, want):
    done = [start(parent, 0).name, start(parent, 0).name]
    running = [start(parent, 60_000).name]
    cancelled = start(parent, 60_000).name
    client.cancel_operation(cancelled)
    expected = {
        "done": done + [cancelled],
        "running": running,
        "all": done + running + [cancelled],
    }[want]
    got = names(client.list_operations(parent, filter_, page_size=1))
    assert sorted(got) == sorted(expected)


@pytest.mark.parametrize("filter_", ["name=x", "done=maybe", "metadata.progressPercent > 5", "(done"])
def test_list_rejects_a_filter_it_cannot_parse(client, parent, filter_):
    with pytest.raises(exceptions.BadRequest) as raised:
        list(client.list_operations(parent, filter_))
    # HTTP 400 maps to several gRPC codes, so the client leaves
    # grpc_status_code unset; the AIP-193 body names it.
    error = raised.value.response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and error["code"] == 400
    assert "Invalid filter" in raised.value.message


# --- CancelOperation / DeleteOperation -------------------------------------------


def test_cancel_makes_the_operation_done_with_cancelled(client, parent):
    name = start(parent, 60_000).name
    assert client.cancel_operation(name) is None
    op = client.get_operation(name)
    assert op.done and op.error.code == code_pb2.CANCELLED
    assert unpack(op.metadata)["requestedCancellation"] is True


def test_cancel_of_a_done_operation_changes_nothing(client, parent):
    name = start(parent, 0).name
    client.cancel_operation(name)
    op = client.get_operation(name)
    assert op.done and not op.HasField("error")
    assert unpack(op.response)["state"] == "SUCCEEDED"


def test_cancel_unknown_operation_is_not_found(client, parent):
    with pytest.raises(exceptions.NotFound):
        client.cancel_operation(f"{parent}/operations/nope")


def test_delete_forgets_the_operation(client, parent):
    name = start(parent, 60_000).name
    assert client.delete_operation(name) is None
    with pytest.raises(exceptions.NotFound):
        client.get_operation(name)
    with pytest.raises(exceptions.NotFound):
        client.delete_operation(name)
    assert names(client.list_operations(parent, "")) == []


# --- operation.from_gapic: the future a generated client returns ------------------


def future(client, started):
    return operation.from_gapic(
        started, client, struct_pb2.Struct, metadata_type=struct_pb2.Struct
    )


def test_future_result_is_the_struct_response(client, parent):
    fut = future(client, start(parent, 1_500))
    result = fut.result(timeout=30)
    assert isinstance(result, struct_pb2.Struct)
    assert json_format.MessageToDict(result) == {"target": f"{parent}/jobs", "state": "SUCCEEDED"}
    assert fut.done() and not fut.cancelled()
    assert fut.metadata["progressPercent"] == 100


def test_future_metadata_shows_progress(client, parent):
    fut = future(client, start(parent, 60_000))
    assert isinstance(fut.metadata, struct_pb2.Struct)
    assert fut.metadata["target"] == f"{parent}/jobs"
    assert not fut.done()
    assert 0 <= fut.metadata["progressPercent"] < 100


def test_future_cancel_cancels_on_the_server(client, parent):
    fut = future(client, start(parent, 60_000))
    assert fut.cancel() is True
    assert fut.cancelled() is True
    assert fut.done()
    with pytest.raises(exceptions.GoogleAPICallError) as raised:
        fut.result(timeout=10)
    assert raised.value.grpc_status_code.name == "CANCELLED"
    assert client.get_operation(fut.operation.name).error.code == code_pb2.CANCELLED
    assert fut.metadata["requestedCancellation"] is True


def test_future_cancel_after_done_is_refused(client, parent):
    fut = future(client, start(parent, 0))
    assert fut.cancel() is False
    assert fut.cancelled() is False
    assert fut.result(timeout=10)["state"] == "SUCCEEDED"


def test_future_result_times_out_while_running(client, parent):
    fut = future(client, start(parent, 60_000))
    with pytest.raises(concurrent.futures.TimeoutError):
        fut.result(timeout=1)
    assert not fut.done()
    fut.cancel()
