"""google-cloud-deploy's generated gRPC clients against the embedded server.

Run by `.ci/run` (see test_operations_client.py). Every answer is decoded by
Google's own code: `CloudDeployClient` / `CloudDeployAsyncClient` over an
insecure gRPC channel, their `google.api_core.operation` futures (typed
`OperationMetadata`, typed results), api-core's gRPC `OperationsClient` and
the googleapis `Operations` stub for WaitOperation. The run time of an
operation is the request metadata `x-duration-ms`.
"""

import asyncio
import os
import threading
import uuid

import grpc
import pytest
from google.api_core import exceptions, operations_v1
from google.cloud import deploy_v1
from google.cloud.deploy_v1.services.cloud_deploy.transports import (
    CloudDeployGrpcAsyncIOTransport,
    CloudDeployGrpcTransport,
)
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2, empty_pb2, field_mask_pb2

ADDR = os.environ["TOWER_LRO_ADDR"]
LONG = [("x-duration-ms", "600000")]


def runs(ms):
    return [("x-duration-ms", str(ms))]


@pytest.fixture(scope="module")
def channel():
    channel = grpc.insecure_channel(ADDR)
    yield channel
    channel.close()


@pytest.fixture(scope="module")
def deploy(channel):
    return deploy_v1.CloudDeployClient(transport=CloudDeployGrpcTransport(channel=channel))


@pytest.fixture(scope="module")
def operations(channel):
    return operations_v1.OperationsClient(channel)


@pytest.fixture()
def location():
    """A location of its own for each test, so lists see only its operations."""
    return f"projects/py-{uuid.uuid4().hex[:12]}/locations/us-central1"


def pipeline(location):
    return f"{location}/deliveryPipelines/web-app"


def create_release(deploy, location, release_id="r1", metadata=LONG):
    release = deploy_v1.Release(description="first cut", labels={"team": "web"})
    return deploy.create_release(
        request={"parent": pipeline(location), "release_id": release_id, "release": release},
        metadata=metadata,
    )


def finished(op, timeout=10):
    """Waits on the future's own polling; fails (not hangs) after `timeout` s."""
    done = threading.Event()
    op.add_done_callback(lambda _: done.set())
    assert done.wait(timeout), "the operation did not finish"
    return op


# --- create, typed metadata and result -------------------------------------------


def test_create_release_is_running_with_typed_metadata(deploy, location):
    op = create_release(deploy, location)
    assert not op.done()
    assert op.operation.name.startswith(f"{location}/operations/")
    metadata = op.metadata
    assert isinstance(metadata, deploy_v1.OperationMetadata)
    assert metadata.target == f"{pipeline(location)}/releases/r1"
    assert metadata.verb == "create"
    assert metadata.api_version == "v1"
    assert metadata.create_time.timestamp() > 0
    assert not metadata.requested_cancellation
    op.cancel()


def test_result_is_the_request_release_named(deploy, location):
    op = create_release(deploy, location, metadata=runs(50))
    release = op.result(timeout=10)
    assert isinstance(release, deploy_v1.Release)
    assert release.name == f"{pipeline(location)}/releases/r1"
    assert release.description == "first cut"
    assert dict(release.labels) == {"team": "web"}


def test_end_time_is_fixed_at_completion(deploy, operations, location):
    op = create_release(deploy, location, metadata=runs(30))
    op.result(timeout=10)
    first = deploy_v1.OperationMetadata.deserialize(
        operations.get_operation(op.operation.name).metadata.value
    )
    second = deploy_v1.OperationMetadata.deserialize(
        operations.get_operation(op.operation.name).metadata.value
    )
    assert first.end_time == second.end_time
    elapsed = first.end_time - first.create_time
    assert elapsed.total_seconds() == pytest.approx(0.030, abs=1e-6)


def test_add_done_callback_fires_once_done(deploy, location):
    op = create_release(deploy, location, metadata=runs(100))
    called = []
    finished(op).add_done_callback(called.append)
    assert called == [op]
    assert op.done() and not op.cancelled()


def test_duplicate_release_id_is_already_exists(deploy, location):
    first = create_release(deploy, location, release_id="dup")
    with pytest.raises(exceptions.AlreadyExists):
        create_release(deploy, location, release_id="dup")
    first.cancel()


def test_create_rollout_update_and_delete_name_their_resources(deploy, location):
    parent = f"{pipeline(location)}/releases/r1"
    rollout = deploy.create_rollout(
        request={"parent": parent, "rollout_id": "r1-prod", "rollout": {"target_id": "prod"}},
        metadata=runs(0),
    ).result(timeout=10)
    assert rollout.name == f"{parent}/rollouts/r1-prod"
    assert rollout.target_id == "prod"

    updated = deploy.update_delivery_pipeline(
        request={
            "update_mask": field_mask_pb2.FieldMask(paths=["description"]),
            "delivery_pipeline": {"name": pipeline(location), "description": "canaries"},
        },
        metadata=runs(0),
    )
    assert updated.result(timeout=10).name == pipeline(location)
    assert updated.metadata.verb == "update"

    deleted = deploy.delete_target(
        request={"name": f"{location}/targets/prod"}, metadata=runs(0)
    )
    assert isinstance(deleted.result(timeout=10), empty_pb2.Empty)
    assert deleted.metadata.target == f"{location}/targets/prod"
    assert deleted.metadata.verb == "delete"


# --- cancel -------------------------------------------------------------------------


def test_cancel_then_cancelled_and_result_raises_cancelled(deploy, location):
    op = create_release(deploy, location)
    assert op.cancel()
    assert op.cancelled()
    with pytest.raises(exceptions.Cancelled):
        op.result(timeout=10)
    assert op.metadata.requested_cancellation
    assert op.metadata.end_time.timestamp() >= op.metadata.create_time.timestamp()


# --- the operations service ------------------------------------------------------


def test_wait_operation_returns_the_done_operation(deploy, channel, location):
    op = create_release(deploy, location, metadata=runs(100))
    stub = operations_pb2_grpc.OperationsStub(channel)
    waited = stub.WaitOperation(
        operations_pb2.WaitOperationRequest(
            name=op.operation.name, timeout=duration_pb2.Duration(seconds=10)
        )
    )
    assert waited.done
    release = deploy_v1.Release.deserialize(waited.response.value)
    assert release.name == f"{pipeline(location)}/releases/r1"


def test_list_filters_on_done_and_pages(deploy, operations, location):
    running = [create_release(deploy, location, f"run-{i}").operation.name for i in range(3)]
    done = [
        create_release(deploy, location, f"done-{i}", metadata=runs(0)).operation.name
        for i in range(2)
    ]
    assert [op.name for op in operations.list_operations(location, "done=true")] == done
    assert [op.name for op in operations.list_operations(location, "NOT done")] == running
    # AIP-158 paging, through the generated client's mixin (one page a call).
    pages, token = [], ""
    while True:
        page = deploy.list_operations(
            request=operations_pb2.ListOperationsRequest(
                name=location, page_size=2, page_token=token
            )
        )
        pages.append([op.name for op in page.operations])
        token = page.next_page_token
        if not token:
            break
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sum(pages, []) == running + done
    with pytest.raises(exceptions.InvalidArgument):
        list(operations.list_operations(location, "name=foo"))
    for name in running:
        operations.cancel_operation(name)


def test_delete_then_get_is_not_found(deploy, operations, location):
    op = create_release(deploy, location, metadata=runs(0))
    deploy.delete_operation(request=operations_pb2.DeleteOperationRequest(name=op.operation.name))
    with pytest.raises(exceptions.NotFound):
        operations.get_operation(op.operation.name)
    with pytest.raises(exceptions.NotFound):
        deploy.get_operation(request=operations_pb2.GetOperationRequest(name=op.operation.name))


# --- the async client --------------------------------------------------------------


def test_async_client_creates_waits_and_cancels(location):
    async def scenario():
        channel = grpc.aio.insecure_channel(ADDR)
        client = deploy_v1.CloudDeployAsyncClient(
            transport=CloudDeployGrpcAsyncIOTransport(channel=channel)
        )
        try:
            quick = await create_async(client, location, "a1", 50)
            release = await quick.result(timeout=10)
            assert release.name == f"{pipeline(location)}/releases/a1"
            assert release.description == "first cut"
            slow = await create_async(client, location, "a2", 600_000)
            assert not await slow.done()
            await slow.cancel()
            assert await slow.cancelled()
            # api-core's AsyncOperation raises a GoogleAPICallError carrying
            # the operation's google.rpc.Status (its sync Operation maps the
            # code to exceptions.Cancelled).
            with pytest.raises(exceptions.GoogleAPICallError) as raised:
                await slow.result(timeout=10)
            assert raised.value.errors[0].code == 1
        finally:
            await channel.close()

    asyncio.run(scenario())


async def create_async(client, location, release_id, ms):
    release = deploy_v1.Release(description="first cut")
    return await client.create_release(
        request={"parent": pipeline(location), "release_id": release_id, "release": release},
        metadata=runs(ms),
    )
