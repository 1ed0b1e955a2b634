"""The embedded local AWS: a moto server over real HTTP, provisioned like the template."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from catalog_sync.aws.secrets import api_key_provider
from catalog_sync.sync.runs import FeedMeta
from catalog_sync.sync.snapshot import ExportMessage
from catalog_sync.sync.state import ItemState, StateBucket, Status
from devstack.localaws import (
    LocalAws,
    MotoServerHandle,
    ResourceNames,
    aws_env,
    client,
    provision,
    start_moto_server,
)


@pytest.fixture(scope="module")
def server() -> Iterator[MotoServerHandle]:
    handle = start_moto_server()
    yield handle
    handle.stop()


def test_localaws_server_listens_on_a_free_port(server: MotoServerHandle) -> None:
    assert server.port > 0
    assert server.endpoint_url == f"http://127.0.0.1:{server.port}"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):
        pass


def test_localaws_stop_closes_the_port() -> None:
    handle = start_moto_server()
    handle.stop()
    handle.stop()  # twice is fine
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", handle.port), timeout=5):
        pass


def test_localaws_aws_env_points_at_the_endpoint() -> None:
    env = aws_env("http://127.0.0.1:5055")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5055"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_ACCESS_KEY_ID"] == env["AWS_SECRET_ACCESS_KEY"] == "testing"


def test_localaws_default_names() -> None:
    names = ResourceNames()
    assert (names.bucket, names.table, names.queue, names.dlq, names.secret) == (
        "catalog-sync-snapshots",
        "catalog-sync-state",
        "catalog-sync-export",
        "catalog-sync-export-dlq",
        "catalog-sync/saas-api-key",
    )


def test_localaws_provision_creates_the_template_resources(server: MotoServerHandle) -> None:
    url = server.endpoint_url
    # moto's state is per process, shared by every server in it: unique names
    names = ResourceNames.unique()

    provision(names, url, "key-1")

    s3, ddb, sqs, sm = (client(s, url) for s in ("s3", "dynamodb", "sqs", "secretsmanager"))
    assert names.bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    table = ddb.describe_table(TableName=names.table)["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {
        "pk": "HASH",
        "sk": "RANGE",
    }
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = ddb.describe_time_to_live(TableName=names.table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")
    queue_url = sqs.get_queue_url(QueueName=names.queue)["QueueUrl"]
    assert queue_url == names.queue_url(url)
    attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["maxReceiveCount"] == 5
    assert redrive["deadLetterTargetArn"].endswith(f":{names.dlq}")
    assert sm.get_secret_value(SecretId=names.secret)["SecretString"] == "key-1"

    provision(names, url, "key-2")  # again: idempotent, the secret takes the new key
    assert sm.get_secret_value(SecretId=names.secret)["SecretString"] == "key-2"


def test_localaws_adapters_work_against_the_provisioned_stack(
    server: MotoServerHandle, tmp_path: Path
) -> None:
    names = ResourceNames.unique()
    provision(names, server.endpoint_url, "the-key")
    aws = LocalAws.connect(server.endpoint_url, names)

    # blobs
    blobs = aws.blobs()
    part = tmp_path / "part.gz"
    part.write_bytes(b"gz")
    blobs.put_file("snapshots/products/r1/part-0000.jsonl.gz", part)
    assert blobs.get_bytes("snapshots/products/r1/part-0000.jsonl.gz") == b"gz"

    # state
    state = aws.state()
    bucket = StateBucket("products", 0, 0, {"a": ItemState("h", Status.PENDING)})
    state.write_bucket(bucket)
    state.write_meta(FeedMeta(feed="products", buckets=1))
    assert state.read_buckets("products", [0])[0].records == bucket.records
    assert state.read_meta("products") == FeedMeta(feed="products", buckets=1)

    # queue: what the export function's event source will receive
    message = ExportMessage(
        feed="products",
        run_id="r1",
        bucket=0,
        part_key="snapshots/products/r1/part-0000.jsonl.gz",
        manifest_key="snapshots/products/r1/manifest.json",
    )
    aws.queue().send([message])
    [got] = aws.sqs.receive_message(QueueUrl=aws.queue_url)["Messages"]
    assert ExportMessage.model_validate_json(got["Body"]) == message

    # the API key secret
    key = api_key_provider(
        secret_id=names.secret, parameter_name=None, max_age=60, secrets_client=aws.secretsmanager
    )
    assert key() == "the-key"


def test_localaws_unique_names_do_not_collide() -> None:
    a, b = ResourceNames.unique(), ResourceNames.unique()
    assert a.bucket != b.bucket and a.table != b.table and a.secret != b.secret
    assert len(a.bucket) <= 63 and a.bucket == a.bucket.lower()
