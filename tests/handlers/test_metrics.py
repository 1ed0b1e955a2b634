"""What the handlers publish: per invocation, one EMF document per feed with a `feed`
dimension and one value per metric (not one per part), printed by a real handler run."""

from __future__ import annotations

import json

from tests.e2e.conftest import FIXTURES
from tests.e2e.faults import state_records

SMALL = FIXTURES / "catalogs" / "small.csv"


def _emf_docs(text: str) -> list[dict]:
    return [
        json.loads(line)
        for line in map(str.strip, text.splitlines())
        if line.startswith("{") and '"_aws"' in line
    ]


def _by_feed(docs: list[dict]) -> tuple[dict[str, dict], list[dict]]:
    by_feed: dict[str, dict] = {}
    service = []
    for doc in docs:
        directive = doc["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "CatalogSync"
        names = [m["Name"] for m in directive["Metrics"]]
        assert len(names) == len(set(names)), names  # each metric once per document
        for name in names:  # one value (Powertools writes it as a one-element list)
            value = doc[name]
            assert isinstance(value, int | float) or len(value) == 1, (name, value)
            doc[name] = value if isinstance(value, int | float) else value[0]
        if "feed" in doc:
            assert any("feed" in dims for dims in directive["Dimensions"])
            assert doc["feed"] not in by_feed, doc["feed"]  # one document per feed
            by_feed[doc["feed"]] = doc
        else:
            service.append(doc)
    return by_feed, service


def test_the_hourly_sync_publishes_one_document_per_feed(make_stack, monkeypatch, capsys):
    stack = make_stack(SMALL, FEEDS="products,prices,categories")
    stack.runner.reindex({"action": "sync"})
    stack.runner.drain()
    capsys.readouterr()
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")

    result = stack.runner.reindex({"action": "sync"})

    by_feed, service = _by_feed(_emf_docs(capsys.readouterr().out))
    runs = {r["feed"]: r for r in result["runs"]}
    assert len(runs) > 1 and sorted(by_feed) == sorted(runs)
    for feed, run in runs.items():
        doc = by_feed[feed]
        assert doc["ItemsUnchanged"] == run["counts"]["unchanged"]
        assert doc["ItemsNew"] == run["counts"]["new"] == 0
        assert doc["ReindexSeconds"] >= 0
    assert [d.get("SyncSucceeded") for d in service] == [1]  # the heartbeat, once


def test_an_export_invocation_sums_its_parts_per_feed(make_stack, monkeypatch, capsys):
    stack = make_stack(SMALL)
    stack.runner.reindex({"action": "resync", "feed": "products"})
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    capsys.readouterr()

    stack.runner.drain()

    docs = [d for d in _emf_docs(capsys.readouterr().out) if "feed" in d]
    sent = 0
    for doc in docs:  # one document per export invocation (an SQS batch of parts)
        by_feed, _ = _by_feed([doc])
        assert list(by_feed) == ["products"]
        sent += by_feed["products"]["ItemsSent"]
    assert docs and sent == 11


def test_failed_items_are_published_as_a_total_the_alarm_sees(make_stack, monkeypatch, capsys):
    stack = make_stack(SMALL)
    stack.receiver.add_fault({"reject": {"sku": ["24-MB01", "24-WG086"]}})
    stack.runner.reindex({"action": "resync", "feed": "products"})
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    capsys.readouterr()

    stack.runner.drain()

    failed = sum(r.status.value == "failed" for r in state_records(stack.runner.app).values())
    assert failed >= 2
    per_feed = service = 0
    for doc in _emf_docs(capsys.readouterr().out):
        by_feed, totals = _by_feed([doc])
        per_feed += sum(d.get("ItemsFailed", 0) for d in by_feed.values())
        service += sum(d.get("ItemsFailed", 0) for d in totals)
    assert per_feed == service == failed  # the FailedItemsAlarm watches the total
