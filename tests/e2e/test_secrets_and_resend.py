"""The API key never leaks; waiting items are resent on the resend schedule; a
state rebuilt from scratch still sends the deletes the SaaS side needs."""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path

import pytest

from catalog_sync.observability import logger as powertools_logger
from catalog_sync.sync.state import StateBucket
from tests.conftest import TEST_API_KEY
from tests.e2e.conftest import FIXTURES

SMALL = FIXTURES / "catalogs" / "small.csv"


def _everything_stored(s) -> bytes:
    """Every object, table item and queued message of the stack, as bytes."""
    app = s.runner.app
    out = io.BytesIO()
    s3 = app.client("s3")
    bucket = app.settings.snapshot_bucket
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out.write(obj["Key"].encode() + b"\n" + body)
            if obj["Key"].endswith(".gz"):
                import gzip

                out.write(gzip.decompress(body))
    ddb = app.client("dynamodb")
    for page in ddb.get_paginator("scan").paginate(TableName=app.settings.state_table):
        for item in page["Items"]:
            out.write(repr(item).encode())
            if "data" in item:  # the compressed bucket state
                from catalog_sync.infra.codec import unpack

                out.write(unpack(item["data"]["B"]))
    return out.getvalue()


def test_e2e_api_key_never_appears_in_logs_snapshots_state_or_events(
    make_stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    catalog = tmp_path / "catalog.csv"
    shutil.copy(SMALL, catalog)
    s = make_stack(catalog, CATALOG_SYNC_LOG_LEVEL="DEBUG")
    assert s.runner.app.settings.saas_api_key_secret_id  # the key comes from Secrets Manager
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)  # botocore's DEBUG prints raw responses: never enable it
    for name in ("catalog_sync", "catalogctl"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    powertools_logger.setLevel("DEBUG")
    try:
        s.resync()
        s.receiver.add_fault({"reject": {"sku": ["24-WG086"]}})
        s.receiver.add_fault({"status": 503, "times": 1})
        catalog.write_text(catalog.read_text().replace(",17,", ",18,", 1))
        s.sync()
        s.runner.reindex({"action": "resend"})
        s.runner.drain()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        powertools_logger.setLevel("WARNING")
    captured = capsys.readouterr()
    logs = stream.getvalue() + captured.out + captured.err
    assert "reindex finished" in logs  # the capture did see our logs
    assert TEST_API_KEY not in logs
    stored = _everything_stored(s)
    assert b"24-WG086" in stored  # the dump did see the data
    assert TEST_API_KEY.encode() not in stored
    for event in (FIXTURES.parent.parent / "events").glob("*.json"):
        assert TEST_API_KEY not in event.read_text()


def test_e2e_resend_schedule_sends_items_that_ran_out_of_retries(make_stack, tmp_path: Path):
    catalog = tmp_path / "catalog.csv"
    shutil.copy(SMALL, catalog)
    s = make_stack(catalog, SAAS_MAX_TRIES="1")
    s.receiver.add_fault({"status": 503, "times": 100})
    s.resync()
    assert s.held() == {}
    s.receiver.clear_faults()
    accepted = s.receiver.stats()["items"]["accepted"]

    result = s.runner.reindex({"action": "resend"})
    s.runner.drain()

    run = result["runs"][0]
    assert run["kind"] == "resend"
    assert run["counts"]["requeued"] == 11
    assert s.receiver.stats()["items"]["accepted"] - accepted == 11
    assert len(s.held()) == 11
    # nothing waits any more: the next resend sends nothing
    result = s.runner.reindex({"action": "resend"})
    assert result["runs"][0]["parts_enqueued"] == 0


def test_e2e_cleanup_feed_rebuilds_state_and_still_deletes_what_saas_holds(
    make_stack, tmp_path: Path
):
    catalog = tmp_path / "catalog.csv"
    shutil.copy(SMALL, catalog)
    s = make_stack(catalog)
    s.resync()
    # the product disappears from the catalog, and the state is rebuilt from scratch
    lines = catalog.read_text().splitlines(keepends=True)
    catalog.write_text("".join(line for line in lines if not line.startswith("24-MB04,")))

    result = s.resync(cleanupFeed=True)

    run = result["runs"][0]
    assert run["kind"] == "resync-cleanup"
    assert ("24-MB04", "default") not in s.held()
    assert len(s.held()) == 10
    records: dict[str, object] = {}
    state = s.runner.app.state
    for bucket in state.read_buckets("products", list(range(64))):
        assert isinstance(bucket, StateBucket)
        records.update(bucket.records)
    assert records["24-MB04\x1fdefault"].deleted
