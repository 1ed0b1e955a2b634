"""The reindex and export use-cases over in-memory fakes (a toy feed)."""

from __future__ import annotations

import orjson
import pytest

from catalog_sync.errors import LeaseHeldError
from catalog_sync.records import Rejected, SourceIssue
from catalog_sync.sync.export import ExportDeps, export_part
from catalog_sync.sync.reindex import ReindexDeps, ReindexRequest, reindex_feed
from catalog_sync.sync.state import Status
from tests.fakes import Clock, Ids, ListSource, MemoryBlobs, MemoryQueue, MemoryState, ScriptedSink
from tests.unit.toyfeed import ToyRecord

VIEWS = (("default", "base"), ("fr", "base"))


class World:
    def __init__(self) -> None:
        self.state = MemoryState()
        self.blobs = MemoryBlobs()
        self.queue = MemoryQueue()
        self.sink = ScriptedSink()
        self.clock = Clock()
        self.ids = Ids()

    def reindex(self, entries, *, complete=True, **req):
        deps = ReindexDeps(
            state=self.state,
            blobs=self.blobs,
            queue=self.queue,
            clock=self.clock,
            new_id=self.ids,
            source=ListSource(entries, complete=complete),
            store_views=VIEWS,
            buckets=8,
        )
        return reindex_feed(ReindexRequest(feeds=("toy",), **req), deps)[0]

    def export(self):
        deps = ExportDeps(state=self.state, blobs=self.blobs, sink=self.sink, clock=self.clock)
        return [export_part(m, deps) for m in self.queue.drain()]

    def sync(self, entries, **kw):
        result = self.reindex(entries, **kw)
        self.sink.calls.clear()
        self.export()
        return result

    def sent_keys(self):
        return sorted(k for call in self.sink.calls for k in call)


def catalog(n=10, **overrides):
    recs = [ToyRecord(f"SKU-{i:03d}", f"Name {i}", 10 + i) for i in range(n)]
    for sku, price in overrides.items():
        for r in recs:
            if r.sku == sku:
                r.price = price
    return recs


def test_reindex_first_run_sends_every_item_once_per_store_view():
    w = World()
    result = w.sync(catalog(10))

    assert result.run.counts["new"] == 20
    assert len(w.sink.received) == 20
    assert all(r.status is Status.SENT for r in w.state.all_records("toy").values())
    assert result.run.status == "completed"


def test_reindex_second_run_without_changes_sends_nothing_and_writes_no_state():
    w = World()
    w.sync(catalog(10))
    writes = w.state.writes

    result = w.sync(catalog(10))

    assert result.run.counts["unchanged"] == 20
    assert result.messages == []
    assert w.sent_keys() == []
    assert w.state.writes == writes


def test_reindex_sends_only_changed_new_and_deleted_items():
    w = World()
    w.sync(catalog(10))
    changed = catalog(10, **{"SKU-003": 99})
    changed = [r for r in changed if r.sku != "SKU-005"] + [ToyRecord("SKU-NEW", "New", 1)]

    result = w.sync(changed)

    assert result.run.counts["changed"] == 2
    assert result.run.counts["new"] == 2
    assert result.run.counts["deleted"] == 2
    assert w.sent_keys() == sorted(
        f"{sku}\x1f{view}"
        for sku in ("SKU-003", "SKU-005", "SKU-NEW")
        for view in ("default", "fr")
    )
    deleted = orjson.loads(w.sink.received["SKU-005\x1fdefault"])
    assert deleted["deleted"] is True and set(deleted) == {
        "sku",
        "storeViewCode",
        "deleted",
        "modifiedAt",
    }


def test_reindex_hash_ignores_number_format_and_list_order():
    w = World()
    w.sync([ToyRecord("A", "a", "52", ("x", "y"))])
    result = w.sync([ToyRecord("A", "a", "52.0000", ("y", "x"))])
    assert result.run.counts["unchanged"] == 2
    assert w.sent_keys() == []


def test_reindex_incomplete_read_never_deletes():
    w = World()
    w.sync(catalog(10))

    result = w.sync(catalog(4), complete=False)

    assert result.run.counts["deleted"] == 0
    assert result.run.counts["deletions_withheld"] == 12
    assert not any(r.deleted for r in w.state.all_records("toy").values())


def test_reindex_rejected_record_keeps_its_items_and_is_reported():
    w = World()
    w.sync(catalog(3))
    bad = Rejected(
        "SKU-001", [SourceIssue("not a number: 'abc'", line=3, sku="SKU-001", field="price")]
    )

    result = w.sync([catalog(3)[0], bad, catalog(3)[2]])

    assert result.run.counts["deleted"] == 0
    assert result.run.counts["kept"] == 2
    assert result.run.issues[0]["field"] == "price"
    # the kept items are still in the compiled snapshot: a no-reindex resend includes them
    w.sync([], mode="resync-no-reindex")
    assert "SKU-001\x1fdefault" in w.sink.received


def test_reindex_force_resync_resends_everything():
    w = World()
    w.sync(catalog(5))
    result = w.sync(catalog(5), mode="resync")
    assert result.run.counts["requeued"] == 10
    assert len(w.sent_keys()) == 10


def test_reindex_no_reindex_resends_compiled_feed_without_source():
    w = World()
    w.sync(catalog(5))
    w.sink.received.clear()

    result = w.sync([], mode="resync-no-reindex")

    assert result.run.counts["requeued"] == 10
    assert result.run.counts["deleted"] == 0
    assert len(w.sink.received) == 10
    assert not any(orjson.loads(b)["deleted"] for b in w.sink.received.values())
    assert not any(r.deleted for r in w.state.all_records("toy").values())


def test_export_invalid_item_fails_with_reason_and_waits_for_change():
    w = World()
    w.sink.invalid["SKU-002\x1fdefault"] = "price must be positive"
    w.sync(catalog(5))
    rec = w.state.all_records("toy")["SKU-002\x1fdefault"]
    assert rec.status is Status.FAILED and rec.reason == "price must be positive"

    w.sync(catalog(5))
    assert w.sent_keys() == []  # unchanged: not retried

    w.sink.invalid.clear()
    w.sync(catalog(5, **{"SKU-002": 7}))
    assert w.state.all_records("toy")["SKU-002\x1fdefault"].status is Status.SENT


def test_export_retryable_failure_is_sent_by_next_sync():
    w = World()
    w.sink.flaky.add("SKU-001\x1ffr")
    w.sync(catalog(3))
    assert w.state.all_records("toy")["SKU-001\x1ffr"].status is Status.RETRY

    w.sink.flaky.clear()
    w.sync(catalog(3))

    assert w.sent_keys() == ["SKU-001\x1ffr"]
    assert w.state.all_records("toy")["SKU-001\x1ffr"].status is Status.SENT


def test_export_redelivered_message_sends_nothing_twice():
    w = World()
    w.reindex(catalog(4))
    messages = list(w.queue.messages)
    w.export()
    first = w.sent_keys()
    w.sink.calls.clear()
    w.queue.send(messages)  # SQS redelivers
    w.export()
    assert len(first) == 8
    assert w.sent_keys() == []


def test_export_stale_message_sends_the_current_version_only():
    w = World()
    w.reindex(catalog(2))
    stale = list(w.queue.drain())
    w.reindex(catalog(2, **{"SKU-000": 1}))
    w.queue.drain()
    w.queue.send(stale)
    w.export()
    body = orjson.loads(w.sink.received["SKU-000\x1fdefault"])
    assert body["price"] == 1.0


def test_reindex_refuses_a_second_run_while_the_lease_is_held():
    w = World()
    w.state.acquire_lease("toy", "someone-else", w.clock.now, 600)
    with pytest.raises(LeaseHeldError, match="someone-else"):
        w.reindex(catalog(1))


def test_reindex_dry_run_writes_nothing():
    w = World()
    w.sync(catalog(3))
    writes, objects = w.state.writes, len(w.blobs.objects)
    result = w.reindex(catalog(3, **{"SKU-001": 5}), dry_run=True)
    assert result.run.counts["changed"] == 2
    assert result.preview["changed"] == ["SKU-001 / default", "SKU-001 / fr"]
    assert (w.state.writes, len(w.blobs.objects), w.queue.messages) == (writes, objects, [])


def test_reindex_by_ids_touches_only_those_skus():
    w = World()
    w.sync(catalog(5))
    result = w.sync(catalog(5), by_ids=frozenset({"sku-001"}), mode="resync-by-ids")
    assert result.run.counts["deleted"] == 0
    assert w.sent_keys() == ["SKU-001\x1fdefault", "SKU-001\x1ffr"]


def _parts(w: World) -> set[str]:
    return {k for k in w.blobs.objects if k.endswith(".jsonl.gz")}


def _manifest_parts(w: World, key: str) -> set[str]:
    manifest = orjson.loads(w.blobs.objects[key])
    keys = [p["key"] for p in manifest["parts"]]
    keys += [d["key"] for p in manifest["parts"] for d in p.get("deltas", ())]
    return {k for k in keys if k}


def test_reindex_prunes_parts_nothing_can_read_any_more():
    w = World()
    manifests = []
    pruned = 0
    recs = catalog(40)
    for i in range(6):  # each run changes a few products: some parts are rewritten
        recs[i].price = 100 + i
        result = w.sync(list(recs))
        manifests.append(result.run.manifest)
        pruned += result.run.counts["parts_pruned"]
        buckets = w.state.read_buckets("toy", range(8))
        live = {k for b in buckets if b.part for k in b.part.objects()}
        assert live <= _parts(w)
        # what remains: the buckets' parts, and those of the previous run's manifest
        # (an export that read the state before this run's writes may open them)
        previous = _manifest_parts(w, manifests[-2]) if i else set()
        assert _parts(w) == live | previous
    assert pruned > 0
    # nothing was lost: a resend of the whole feed still finds every item's content
    w.reindex([], mode="resync-no-reindex")
    results = w.export()
    assert sum(r.counts["sent"] for r in results) == 80
    assert sum(r.counts["missing"] for r in results) == 0


def test_reindex_keeps_everything_when_the_previous_manifest_is_gone():
    w = World()
    w.sync(catalog(10))
    first = w.sync(catalog(10, **{"SKU-001": 5}))
    w.blobs.objects.pop(first.run.manifest)
    before = _parts(w)

    result = w.sync(catalog(10, **{"SKU-001": 6}))

    assert result.run.counts["parts_pruned"] == 0
    assert before <= _parts(w)
