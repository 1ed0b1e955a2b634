"""The sample events in events/ (for `sam local invoke -e` and the handler tests)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from catalog_sync.sync.requests import ReindexEvent
from catalog_sync.sync.snapshot import ExportMessage, manifest_key, part_key

EVENTS = Path(__file__).resolve().parents[1] / "events"
NAME = re.compile(r"^(reindex|export)_[a-z0-9_]+\.json$")


def _load(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def test_events_every_file_is_named_and_parses() -> None:
    files = sorted(p.name for p in EVENTS.glob("*.json"))
    assert files, "no events"
    for name in files:
        assert NAME.match(name), f"{name}: expected <function>_<scenario>.json"
        assert isinstance(_load(name), dict), f"{name}: expected a JSON object"


def test_events_schedule_is_the_standard_scheduled_event() -> None:
    event = _load("reindex_schedule.json")
    assert set(event) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["detail"] == {}
    assert re.fullmatch(r"\d{12}", event["account"])
    assert all(r.startswith("arn:aws:events:") for r in event["resources"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("reindex_resync.json", {"action": "resync", "feed": "products"}),
        (
            "reindex_resync_confirm_deletions.json",
            {"action": "resync", "feed": "products", "confirmDeletions": True},
        ),
        (
            "reindex_resync_no_reindex.json",
            {"action": "resync", "feed": "products", "noReindex": True},
        ),
        (
            "reindex_resync_by_ids.json",
            {"action": "resync", "feed": "products", "byIds": ["MH01-XS-Black"], "idType": "sku"},
        ),
        ("reindex_sync.json", {"action": "sync"}),
        ("reindex_resend.json", {"action": "resend"}),
    ],
)
def test_events_reindex_request_shape(name: str, expected: dict[str, Any]) -> None:
    assert _load(name) == expected


def test_events_export_sqs_is_a_full_sqs_event() -> None:
    event = _load("export_sqs.json")
    assert len(event["Records"]) >= 1
    for record in event["Records"]:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"].startswith("arn:aws:sqs:")
        for field in ("messageId", "receiptHandle", "body", "md5OfBody", "awsRegion"):
            assert isinstance(record[field], str) and record[field], field
        assert record["attributes"]["ApproximateReceiveCount"].isdigit()
        assert isinstance(record["messageAttributes"], dict)


def test_events_export_body_is_an_export_message() -> None:
    records = _load("export_sqs.json")["Records"]
    message = ExportMessage.model_validate_json(records[0]["body"])
    assert message == ExportMessage(
        feed="products",
        run_id="20261129T050000Z-ab12cd34",
        buckets=[3, 4, 7],
        manifest_key="snapshots/products/20261129T050000Z-ab12cd34/manifest.json",
    )
    # The keys follow the snapshot layout the reindex writes.
    assert message.manifest_key == manifest_key(message.feed, message.run_id)
    assert message.describe() == "products/20261129T050000Z-ab12cd34 bucket(s) 3-4,7"


def test_events_export_message_of_the_earlier_format_still_reads() -> None:
    """A single-bucket message already in a queue when the code changed."""
    old = _load("export_sqs.json")["Records"][1]["body"]
    assert orjson.loads(old)["part_key"] == part_key("products", "20261129T050000Z-ab12cd34", 7)
    message = ExportMessage.model_validate_json(old)
    assert message.buckets == [7] and message.carried == {} and message.handbacks == 0


@pytest.mark.parametrize("name", sorted(p.name for p in EVENTS.glob("reindex_*.json")))
def test_events_reindex_events_parse_as_the_handler_reads_them(name: str) -> None:
    event = ReindexEvent.parse(_load(name))
    assert event.action in ("sync", "resync", "resend")
