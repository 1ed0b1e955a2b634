"""The engine with the ACO feeds (in-memory fakes): what is sent is the wire JSON, sent
exactly when it changes; deletes per locale with keys only; the special price window;
bad input; metadata before products."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from catalog_sync.feeds.aco import ACO_FEED_NAMES
from catalog_sync.ports import ItemOutcome, OutgoingItem, batches_of
from catalog_sync.sync.export import ExportDeps, export_part
from catalog_sync.sync.guard import DeletionGuard
from catalog_sync.sync.reindex import ReindexDeps, ReindexRequest, reindex_feed
from catalog_sync.sync.snapshot import ExportMessage
from catalog_sync.sync.state import Status
from tests.fakes import Clock, Ids, ListSource, MemoryBlobs, MemoryQueue, MemoryState
from tests.unit.aco_fixtures import ACO, VIEWS, bag, catalog


class RecordingSink:
    """Accepts everything; remembers every call: (feed, [(key, deleted, body)])."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, bool, dict[str, Any]]]]] = []

    def batches(self, feed: str, items: Iterable[OutgoingItem]) -> Iterator[list[OutgoingItem]]:
        return batches_of(items, 1000)

    def send(self, feed: str, items: Any) -> list[ItemOutcome]:
        batch: list[OutgoingItem] = list(items)
        self.calls.append((feed, [(i.key, i.deleted, orjson.loads(i.body)) for i in batch]))
        return [ItemOutcome("sent") for _ in batch]

    def sent(self, feed: str) -> list[tuple[str, bool, dict[str, Any]]]:
        return [x for f, batch in self.calls if f == feed for x in batch]


class World:
    def __init__(self) -> None:
        self.state = MemoryState()
        self.blobs = MemoryBlobs()
        self.queue = MemoryQueue()
        self.sink = RecordingSink()
        # inside the bag's special price window (May 1 to June 30, 2025)
        self.clock = Clock(datetime(2025, 6, 1, 12, tzinfo=UTC))
        self.ids = Ids()
        self.requeued: list[ExportMessage] = []

    def reindex(self, entries: list[Any], feeds: tuple[str, ...] = ACO_FEED_NAMES, **req: Any):
        deps = ReindexDeps(
            state=self.state,
            blobs=self.blobs,
            queue=self.queue,
            clock=self.clock,
            new_id=self.ids,
            source=ListSource(entries),
            store_views=VIEWS,
            buckets=4,
            aco=ACO,
            # a toy catalog's deletions are a large fraction of it; the guard's own
            # tests are in test_deletion_guard.py
            guard=DeletionGuard(max_fraction=1.0),
        )
        return reindex_feed(ReindexRequest(feeds=feeds, **req), deps)

    def export(self, messages: list[ExportMessage] | None = None) -> list[Any]:
        deps = ExportDeps(
            state=self.state,
            blobs=self.blobs,
            sink=self.sink,
            clock=self.clock,
            requeue=self.requeued.append,
        )
        return [
            export_part(m, deps) for m in (self.queue.drain() if messages is None else messages)
        ]

    def sync(self, entries: list[Any], **kw: Any) -> list[Any]:
        results = self.reindex(entries, **kw)
        self.sink.calls.clear()
        self.export()
        return results


def test_aco_engine_sends_wire_json_once_and_nothing_when_unchanged() -> None:
    w = World()
    results = w.sync(catalog())
    assert [r.run.feed for r in results] == list(ACO_FEED_NAMES)
    products = w.sink.sent("acoProducts")
    assert len(products) == 2 + 2 + 2 + 3 + 2  # hoodie, 2 children, bag (3 locales), set
    for _key, deleted, body in products:
        assert not deleted and "modifiedAt" not in body and "deleted" not in body
    assert all(r.status is Status.SENT for r in w.state.all_records("acoProducts").values())

    w.sync(catalog())
    assert w.sink.calls == []


def test_aco_engine_a_change_resends_only_what_it_changes() -> None:
    w = World()
    w.sync(catalog())
    changed = catalog()
    changed[3] = bag(price=36.0)  # a price edit: prices only
    w.sync(changed)
    assert {f for f, _ in w.sink.calls} == {"acoPrices"}
    sent = w.sink.sent("acoPrices")
    assert {k.split("\x1f")[0] for k, _, _ in sent} == {"24-MB01"}
    assert len(sent) == 4 and {b["regular"] for _, _, b in sent} == {36.0}  # 2 bases, 2 groups

    renamed = catalog()
    renamed[3] = bag(price=36.0)
    renamed[3].overrides = {"fr": dataclasses.replace(renamed[3].values, name="Sac Joust")}
    w.sync(renamed)
    assert [(k, b["name"]) for k, _, b in w.sink.sent("acoProducts")] == [
        ("24-MB01\x1ffr-FR", "Sac Joust")
    ]
    assert {f for f, _ in w.sink.calls} == {"acoProducts"}


def test_aco_engine_product_removed_from_one_store_view_is_deleted_there_only() -> None:
    w = World()
    w.sync(catalog())
    gone = catalog()
    gone[3] = dataclasses.replace(bag(), websites=("base",))  # leaves website eu (de)
    w.sync(gone)
    assert w.sink.sent("acoProducts") == [
        ("24-MB01\x1fde-DE", True, {"sku": "24-MB01", "source": {"locale": "de-DE"}})
    ]
    assert w.sink.sent("acoPrices") == [
        ("24-MB01\x1feu", True, {"sku": "24-MB01", "priceBookId": "eu"}),
        *[x for x in w.sink.sent("acoPrices") if x[0].startswith("24-MB01\x1feu::")],
    ]
    records = w.state.all_records("acoProducts")
    assert records["24-MB01\x1fde-DE"].deleted and not records["24-MB01\x1fen-US"].deleted


def test_aco_engine_special_price_discount_drops_at_the_next_sync_after_its_window() -> None:
    w = World()
    w.sync(catalog())
    base = [b for k, _, b in w.sink.sent("acoPrices") if k == "24-MB01\x1fbase"]
    assert base[0]["discounts"] == [{"code": "special_price", "price": 4.0}]
    w.clock.now = datetime(2025, 7, 1, 1, tzinfo=UTC)  # the window closed; source unchanged
    w.sync(catalog())
    base = [b for k, _, b in w.sink.sent("acoPrices") if k == "24-MB01\x1fbase"]
    assert base == [
        {
            "sku": "24-MB01",
            "priceBookId": "base",
            "regular": 34.0,
            "discounts": [],
            "tierPrices": [{"qty": 5.0, "price": 31.0}],
        }
    ]
    assert {f for f, _ in w.sink.calls} == {"acoPrices"}


def test_aco_engine_unmappable_product_is_reported_not_sent_and_keeps_its_state() -> None:
    w = World()
    w.sync(catalog())
    before = w.state.all_records("acoProducts")
    broken = catalog()
    broken[3] = bag(url_key=None, name="Renamed bag")
    results = {r.run.feed: r.run for r in w.sync(broken)}
    run = results["acoProducts"]
    assert run.counts["rejected"] == 1 and run.counts["deleted"] == 0
    issue = run.issues[0]
    assert (issue["sku"], issue["field"]) == ("24-MB01", "url_key")
    assert w.sink.sent("acoProducts") == []
    after = w.state.all_records("acoProducts")
    assert {k: v.hash for k, v in after.items()} == {k: v.hash for k, v in before.items()}
    prices = results["acoPrices"]  # the other feeds go on
    assert prices.status == "completed" and prices.counts["rejected"] == 0
    parent = results["acoPrices"]
    assert parent.counts["unchanged"] > 0


def test_aco_engine_products_wait_for_metadata_then_go() -> None:
    w = World()
    w.reindex(catalog())
    messages = w.queue.drain()
    meta = [m for m in messages if m.feed == "acoProductMetadata"]
    products = [m for m in messages if m.feed == "acoProducts"]
    assert meta and products
    early = w.export(products[:1])[0]  # metadata not exported yet: handed back
    assert early.counts == {"deferred": 1} and "acoProductMetadata" in (early.error or "")
    assert w.requeued == products[:1] and w.sink.sent("acoProducts") == []
    w.export(meta)
    w.export(products)
    assert len(w.sink.sent("acoProducts")) == 11
    order = [f for f, _ in w.sink.calls]
    assert order.index("acoProducts") > max(
        i for i, f in enumerate(order) if f == "acoProductMetadata"
    )


def test_aco_engine_prices_wait_for_price_books() -> None:
    w = World()
    w.reindex(catalog())
    messages = w.queue.drain()
    prices = [m for m in messages if m.feed == "acoPrices"]
    books = [m for m in messages if m.feed == "acoPriceBooks"]
    assert w.export(prices)[0].counts == {"deferred": 1}
    w.export(books)
    assert all(r.counts.get("sent") for r in w.export(prices))


def test_aco_engine_resync_options_work_for_the_aco_feeds() -> None:
    w = World()
    w.sync(catalog())
    # --dry-run: nothing queued or written
    dry = w.reindex(catalog(), feeds=("acoProducts",), dry_run=True, mode="resync")
    assert dry[0].messages == [] and w.queue.messages == []
    # --by-ids: only that SKU, every locale
    w.sync(
        catalog(),
        feeds=("acoProducts",),
        mode="resync-by-ids",
        by_ids=frozenset({"24-mb01"}),
    )
    assert sorted(k for k, _, _ in w.sink.sent("acoProducts")) == [
        "24-MB01\x1fde-DE",
        "24-MB01\x1fen-US",
        "24-MB01\x1ffr-FR",
    ]
    # --no-reindex: the compiled feed again, without the source
    w.sync([], feeds=("acoProducts",), mode="resync-no-reindex")
    assert len(w.sink.sent("acoProducts")) == 11
    # --cleanup-feed: rebuilt from scratch, a product gone from the catalog still deleted
    w.sync(catalog()[:4], feeds=("acoProducts",), mode="resync-cleanup")
    deletes = [(k, b) for k, d, b in w.sink.sent("acoProducts") if d]
    assert deletes == [
        (f"24-WG080\x1f{loc}", {"sku": "24-WG080", "source": {"locale": loc}})
        for loc in ("en-US", "fr-FR")
    ]
