"""Record fingerprints (`sync.fingerprints`): an unchanged CSV record is not built,
and whatever changes what a builder makes from the same rows builds it again.

Every test runs the same syncs twice: in `World(fingerprints=True)` and in a twin
whose fingerprints are dropped before each run (every record built, as before
fingerprints existed); both must end with the same state and snapshot content."""

from __future__ import annotations

import csv
import dataclasses
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog_sync.feeds import registry
from catalog_sync.feeds.products import PRODUCTS, build_product_items
from catalog_sync.feeds.spec import AcoContext, BuildContext
from catalog_sync.sources.magento_csv import MagentoCsvSource
from catalog_sync.sync.export import ExportDeps, export_part
from catalog_sync.sync.fingerprints import Encoding, FingerprintSet, context_digest, decode
from catalog_sync.sync.reindex import ReindexDeps, ReindexRequest, reindex_feed
from catalog_sync.sync.snapshot import read_bucket_items
from tests.fakes import Clock, Ids, MemoryBlobs, MemoryQueue, MemoryState, ScriptedSink

COLUMNS = [
    "sku",
    "store_view_code",
    "product_type",
    "product_websites",
    "name",
    "price",
    "special_price",
    "special_price_from_date",
    "qty",
    "is_in_stock",
    "url_key",
    "visibility",
    "product_online",
]
VIEWS = (("default", "base"), ("fr", "base"))


def product(sku: str, name: str | None = None, price: str = "10.0000", **cells: str) -> dict:
    row = dict.fromkeys(COLUMNS, "")
    row.update(
        sku=sku,
        product_type="simple",
        product_websites="base",
        name=name or f"Name {sku}",
        price=price,
        qty="5",
        is_in_stock="1",
        url_key=sku.lower(),
        visibility="Catalog, Search",
        product_online="1",
    )
    row.update(cells)
    return row


def write(path: Path, rows: list[dict], columns: list[str] = COLUMNS) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, columns, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


class World:
    def __init__(self, tmp: Path, *, fingerprints: bool) -> None:
        self.path = tmp / ("a.csv" if fingerprints else "b.csv")
        self.fingerprints = fingerprints
        self.state = MemoryState()
        self.blobs = MemoryBlobs()
        self.queue = MemoryQueue()
        self.sink = ScriptedSink()
        self.clock = Clock()

    def sync(
        self,
        rows: list[dict],
        *,
        feeds: tuple[str, ...] = ("products",),
        views: tuple[tuple[str, str], ...] = VIEWS,
        columns: list[str] = COLUMNS,
        partition_bytes: int = 1 << 23,
        **deps: Any,
    ) -> dict[str, int]:
        write(self.path, rows, columns)
        if not self.fingerprints:
            for feed in feeds:
                meta = self.state.read_meta(feed)
                if meta is not None and meta.fingerprints:
                    meta.fingerprints = None
                    self.state.write_meta(meta)
        results = reindex_feed(
            ReindexRequest(feeds=feeds),
            ReindexDeps(
                state=self.state,
                blobs=self.blobs,
                queue=self.queue,
                clock=self.clock,
                new_id=Ids(),
                source=MagentoCsvSource(str(self.path), partition_bytes=partition_bytes),
                store_views=views,
                buckets=4,
                **deps,
            ),
        )
        self.sink.calls.clear()
        self.issues = [i["message"] for i in results[0].run.issues]
        edeps = ExportDeps(state=self.state, blobs=self.blobs, sink=self.sink, clock=self.clock)
        for m in self.queue.drain():
            export_part(m, edeps)
        return results[0].run.counts

    def sent(self) -> list[str]:
        return sorted(k for call in self.sink.calls for k in call)

    def content(self, feed: str = "products") -> dict[str, Any]:
        """Every item's state and live snapshot line, without the run ids and times."""
        out: dict[str, Any] = {}
        for bucket in self.state.read_buckets(feed, range(4)):
            for key, rec in bucket.records.items():
                out[key] = (rec.hash, rec.status.value, rec.deleted, rec.sent_hash)
            if bucket.part is not None and bucket.part.key:
                for key, h, body in read_bucket_items(self.blobs, bucket.part):
                    rec = bucket.records.get(key)
                    if rec is not None and not rec.deleted and rec.hash == h:
                        out["body " + key] = body.split(b',"modifiedAt"')[0]
        return out


class Twins(World):
    """The world with fingerprints; `both` syncs it and its twin without, and
    checks they agree."""

    twin: World

    def both(self, rows: list[dict], **kw: Any) -> dict[str, int]:
        counts = self.sync(rows, **kw)
        self.twin.sync(rows, **kw)
        assert self.content() == self.twin.content()
        assert self.sent() == self.twin.sent()
        return counts


@pytest.fixture
def worlds(tmp_path: Path) -> Twins:
    a = Twins(tmp_path, fingerprints=True)
    a.twin = World(tmp_path, fingerprints=False)
    return a


CATALOG = [product(f"SKU-{i}") for i in range(12)]


def test_an_unchanged_sync_builds_no_record_and_sends_nothing(worlds):
    first = worlds.both(CATALOG)
    assert first["new"] == 24 and first["records_unchanged"] == 0

    again = worlds.both(CATALOG)

    assert again["records_unchanged"] == 12 and again["items_read"] == 0
    assert again["unchanged"] == 24 and again["parts_reused"] == 4
    assert worlds.sent() == []


def test_an_edited_row_builds_and_sends_only_its_product(worlds):
    worlds.both(CATALOG)
    edited = [*CATALOG[:5], product("SKU-5", "Renamed"), *CATALOG[6:]]

    counts = worlds.both(edited)

    assert counts["records_unchanged"] == 11 and counts["changed"] == 2
    assert worlds.sent() == ["SKU-5\x1fdefault", "SKU-5\x1ffr"]


def test_a_store_view_row_added_or_a_product_deleted_is_seen(worlds):
    worlds.both(CATALOG)
    fr_row = product("SKU-3", "Nom FR", store_view_code="fr", price="")
    counts = worlds.both([*CATALOG[:3], CATALOG[3], fr_row, *CATALOG[5:]])  # SKU-4 gone

    assert counts["records_unchanged"] == 10
    assert counts["changed"] == 1 and counts["deleted"] == 2
    assert worlds.sent() == ["SKU-3\x1ffr", "SKU-4\x1fdefault", "SKU-4\x1ffr"]


def test_worker_processes_skip_and_store_fingerprints_as_one_process_does(worlds):
    rows = [product(f"W-{i:03d}") for i in range(120)]
    split = {"partition_bytes": 2_000, "workers": 2}  # several partitions, two workers
    worlds.both(rows, **split)
    assert worlds.both(rows, **split)["records_unchanged"] == 120

    rows[42] = product("W-042", "Renamed")
    counts = worlds.both(rows, **split)

    assert counts["records_unchanged"] == 119 and counts["changed"] == 2
    assert worlds.sent() == ["W-042\x1fdefault", "W-042\x1ffr"]
    assert worlds.both(rows)["records_unchanged"] == 120  # read in one process: the same


def _renamed(product: Any, ctx: BuildContext) -> list[dict[str, Any]]:
    items = build_product_items(product, ctx)
    if product.sku == "SKU-7":
        for item in items:
            item["name"] = f"{item['name']} (v2)"
    return items


def test_a_builder_version_bump_resends_what_it_changes_and_nothing_else(worlds, monkeypatch):
    worlds.both(CATALOG)
    v2 = dataclasses.replace(PRODUCTS, build=_renamed)  # new code, same version
    monkeypatch.setitem(registry._REGISTRY, "products", v2)
    stale = worlds.sync(CATALOG)  # only the fingerprinted world: its records are not built
    assert stale["records_unchanged"] == 12 and worlds.sent() == []

    bumped = dataclasses.replace(v2, version=PRODUCTS.version + 1)
    monkeypatch.setitem(registry._REGISTRY, "products", bumped)
    counts = worlds.sync(CATALOG)

    assert counts["records_unchanged"] == 0 and counts["items_read"] == 24
    assert counts["changed"] == 2 and counts["unchanged"] == 22
    assert worlds.sent() == ["SKU-7\x1fdefault", "SKU-7\x1ffr"]
    assert worlds.sync(CATALOG)["records_unchanged"] == 12  # stored again, for v2


def test_other_store_views_build_every_record_again(worlds):
    worlds.both(CATALOG)
    views = (*VIEWS, ("de", "base"))

    counts = worlds.both(CATALOG, views=views)

    assert counts["records_unchanged"] == 0 and counts["new"] == 12
    assert worlds.both(CATALOG, views=views)["records_unchanged"] == 12


def test_other_enabled_feeds_build_every_record_again(worlds):
    worlds.both(CATALOG)

    # with the prices feed, product items carry no price: every item changes
    counts = worlds.both(CATALOG, enabled_feeds=frozenset({"products", "prices"}))

    assert counts["records_unchanged"] == 0 and counts["changed"] == 24


def test_another_header_builds_every_record_again(worlds):
    worlds.both(CATALOG)

    counts = worlds.both(CATALOG, columns=[*COLUMNS, "color"])

    assert counts["records_unchanged"] == 0 and counts["unchanged"] == 24


def test_a_special_price_window_that_opens_builds_its_record_again(worlds):
    start = worlds.clock.now + timedelta(hours=2)
    rows = [
        *CATALOG,
        product("SALE", special_price="5", special_price_from_date=f"{start:%Y-%m-%d %H:%M:%S}"),
    ]
    worlds.both(rows)
    assert worlds.both(rows)["records_unchanged"] == 13  # the window is not open yet

    for w in (worlds, worlds.twin):
        w.clock.now = start + timedelta(minutes=1)
    counts = worlds.both(rows)

    assert counts["records_unchanged"] == 12 and counts["changed"] == 2
    assert worlds.sent() == ["SALE\x1fdefault", "SALE\x1ffr"]


def test_a_record_with_warnings_is_built_and_reported_every_run(worlds):
    rows = [*CATALOG, product("ODD", special_price="5", special_price_from_date="someday")]
    worlds.both(rows)
    assert any("unrecognised date" in m for m in worlds.issues)

    counts = worlds.both(rows)

    assert counts["records_unchanged"] == 12 and counts["records"] == 13
    assert any("unrecognised date" in m for m in worlds.issues)


def test_a_run_that_dies_in_its_diff_leaves_no_fingerprints(worlds, monkeypatch):
    worlds.both(CATALOG)
    assert worlds.state.read_meta("products").fingerprints
    edited = [product(f"SKU-{i}", "New") for i in range(12)]
    writes = 0
    real = worlds.state.write_prepared

    def dying(write: Any, **kwargs: Any) -> None:
        nonlocal writes
        writes += 1
        if writes == 2:
            raise RuntimeError("crash")
        real(write, **kwargs)

    monkeypatch.setattr(worlds.state, "write_prepared", dying)
    with pytest.raises(RuntimeError):
        worlds.sync(edited)
    monkeypatch.undo()
    assert worlds.state.read_meta("products").fingerprints is None

    # back to the first catalog: a bucket written by the dead run is built again
    counts = worlds.sync(CATALOG)
    assert counts["records_unchanged"] == 0
    worlds.twin.sync(CATALOG)
    assert worlds.content() == worlds.twin.content()


def test_the_context_digest_covers_what_builders_depend_on():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ctx = BuildContext(now=now, store_views=VIEWS, feeds=frozenset({"products"}))
    base = context_digest(PRODUCTS, ctx, "csv/1/h")
    others = [
        context_digest(dataclasses.replace(PRODUCTS, version=2), ctx, "csv/1/h"),
        context_digest(PRODUCTS, dataclasses.replace(ctx, store_views=VIEWS[:1]), "csv/1/h"),
        context_digest(
            PRODUCTS, dataclasses.replace(ctx, feeds=frozenset({"products", "prices"})), "csv/1/h"
        ),
        context_digest(
            PRODUCTS, dataclasses.replace(ctx, aco=AcoContext(media_base_url="x")), "csv/1/h"
        ),
        context_digest(PRODUCTS, ctx, "csv/2/h"),
        context_digest(registry.get_feed("prices"), ctx, "csv/1/h"),
    ]
    assert base == context_digest(
        PRODUCTS, dataclasses.replace(ctx, now=now + timedelta(1)), "csv/1/h"
    )
    assert len({base, *others}) == len(others) + 1


def test_stored_fingerprints_round_trip_and_expire():
    found = FingerprintSet()
    found.add(7, float("inf"))
    found.add(3, float("inf"))
    found.add(11, 1000.0)
    stored = decode(found.to_bytes("d1"), "d1")
    assert stored is not None
    assert stored.until(3, 0) == stored.until(7, 0) == float("inf")
    assert stored.until(11, 999.0) == 1000.0 and stored.until(11, 1000.0) is None
    assert stored.until(5, 0) is None
    assert decode(found.to_bytes("d1"), "d2") is None


def _set(n: int) -> FingerprintSet:
    found = FingerprintSet()
    found.add_many([(i * 7919) % 100_003 for i in range(n)], [float("inf")] * n)
    found.add(5, 1000.0)
    return found


def test_fingerprints_encoded_ahead_are_the_set_s_bytes():
    found = _set(5000)
    encoding = Encoding(found, "d1")
    data = encoding.result(found, "d1")
    assert data == found.to_bytes("d1")
    assert data is encoding.result(found, "d1")  # the thread's bytes, not encoded again


@pytest.mark.parametrize("change", ["add", "add_many", "update", "replaced", "digest", "other"])
def test_fingerprints_changed_after_encoding_ahead_are_encoded_again(change):
    """Whatever changed the set after the encoding began, what is published is the
    set as it is at the end of the run."""
    found = _set(5000)
    encoding = Encoding(found, "d1")
    encoding.result(found, "d1")  # the thread is done: the change comes after it
    digest, given = "d1", found
    if change == "add":
        found.add(100_500, float("inf"))
    elif change == "add_many":
        found.add_many([100_501], [2000.0])
    elif change == "update":
        found.update(_set(3))
    elif change == "replaced":  # as a continuation restores a staged set
        found.stable = array("Q", found.stable)
        found.stable.append(100_502)
    elif change == "digest":
        digest = "d2"
    else:
        given = _set(10)
    assert encoding.result(given, digest) == given.to_bytes(digest)
    assert encoding.result(given, digest) != _set(5000).to_bytes("d1")


def test_a_run_publishes_the_fingerprints_it_encoded_ahead(worlds, monkeypatch):
    """The reindex begins the encoding when the read is complete and publishes its
    bytes: a sync after it finds every record unchanged."""
    from catalog_sync.sync import fingerprints

    begun: list[Encoding] = []

    class Spy(Encoding):
        def __init__(self, found: FingerprintSet, digest: str) -> None:
            super().__init__(found, digest)
            begun.append(self)

    monkeypatch.setattr("catalog_sync.sync.reindex.Encoding", Spy)
    calls: list[bytes] = []
    original = fingerprints.FingerprintSet.to_bytes

    def counted(self: FingerprintSet, digest: str) -> bytes:
        calls.append(b"")
        return original(self, digest)

    monkeypatch.setattr(fingerprints.FingerprintSet, "to_bytes", counted)
    worlds.sync(CATALOG)
    assert len(begun) == 1 and len(calls) == 1  # published from the encoding: once
    again = worlds.sync(CATALOG)
    assert again["records_unchanged"] == 12 and again["items_read"] == 0
