"""The unchanged-source shortcut (`sync.unchanged`) on the local stack (moto over
HTTP, the real handlers, the real receiver): a sync of the same bytes reads, builds
and diffs nothing, and ends with the same state, snapshot content and receiver
content as the full path (a twin stack whose seals are dropped before each sync);
whatever changes the bytes or the build context, or a run that may not seal, sends
the next sync down the full path.

`SETTLE_SECONDS` is 0 here: the tests write a file and read it at once (the
settling rule has its own test)."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from catalog_sync.feeds import registry
from catalog_sync.feeds.products import PRODUCTS
from catalog_sync.sources.magento_csv import digest
from catalog_sync.sync.diff import run_id_of
from catalog_sync.sync.runs import RunRecord
from catalog_sync.sync.snapshot import Manifest, read_bucket_items
from catalog_sync.sync.state import Status
from catalogctl.status import collect_status, print_status
from devstack.local import LocalRunner
from tests.e2e.conftest import FIXTURES, Stack
from tests.e2e.test_aco_target import aco_stack  # noqa: F401 (the fixture)
from tests.fixtures.featured import STOCKS, write_featured

SMALL = FIXTURES / "catalogs" / "small.csv"
ALL_FEEDS = "products,prices,variants,inventoryStockStatus,categories,productAttributes"
VIEWS = "default:base,fr:base,eu_en:eu"
# what a run built, not what it made: the shortcut builds nothing
BUILD_COUNTS = frozenset({"items_read", "items_not_built", "records_unchanged"})


@pytest.fixture(autouse=True)
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digest, "SETTLE_SECONDS", 0.0)


def rows_of(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    return header, rows


def write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])


def edit(path: Path, sku: str, **cells: str) -> None:
    """Set cells of the global row of `sku`."""
    header, rows = rows_of(path)
    for row in rows:
        if row[0] == sku and not row[1]:
            for name, value in cells.items():
                row[header.index(name)] = value
    write_rows(path, header, rows)


def catalog(tmp_path: Path, name: str = "catalog.csv") -> Path:
    """small.csv with a description on MH01-XS-Black (to change one byte of)."""
    path = tmp_path / name
    path.write_bytes(SMALL.read_bytes())
    edit(path, "MH01-XS-Black", description="Soft cotton fleece")
    return path


def shortcuts(result: dict[str, Any]) -> set[str | None]:
    """The runs each run stood on (None: it read the source)."""
    return {r.get("source_unchanged") for r in result["runs"]}


def drop_seals(s: Stack) -> None:
    """The twin without the shortcut: no run finds a seal."""
    state = s.runner.app.state
    for feed in s.runner.app.settings.feed_names():
        meta = state.read_meta(feed)
        if meta is not None and meta.source_seal is not None:
            meta.source_seal = None
            state.write_meta(meta)


def state_of(s: Stack) -> dict[str, dict[str, tuple[Any, ...]]]:
    """Every feed's item states, without what differs between two stacks (run ids, times)."""
    app = s.runner.app
    out = {}
    for feed in app.settings.feed_names():
        meta = app.state.read_meta(feed)
        assert meta is not None
        out[feed] = {
            key: (r.hash, r.status.value, r.deleted, r.sent_hash, r.reason, r.attempts)
            for b in app.state.read_buckets(feed, list(range(meta.buckets)))
            for key, r in b.records.items()
        }
    return out


def snapshot_of(s: Stack) -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
    """Every feed's content through its latest manifest (modifiedAt left out)."""
    app = s.runner.app
    out = {}
    for feed in app.settings.feed_names():
        meta = app.state.read_meta(feed)
        assert meta is not None and meta.latest_manifest
        manifest = Manifest.model_validate_json(app.blobs.get_bytes(meta.latest_manifest))
        items = {}
        for part in manifest.parts:
            for key, h, body in read_bucket_items(app.blobs, part):
                doc = orjson.loads(body)
                doc.pop("modifiedAt", None)
                items[key] = (h, doc)
        out[feed] = items
    return out


def held_of(s: Stack) -> dict[str, list[dict[str, Any]]]:
    env = s.env["SAAS_ENVIRONMENT_ID"]
    return {
        feed: sorted(
            (
                {k: v for k, v in i.items() if k != "modifiedAt"}
                for i in s.receiver.state(feed, env)
            ),
            key=repr,
        )
        for feed in s.runner.app.settings.feed_names()
    }


def counts_of(result: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {
        r["feed"]: {k: v for k, v in r["counts"].items() if k not in BUILD_COUNTS}
        for r in result["runs"]
    }


def wait_for_retry(s: Stack, feed: str, keys: list[str], stale: list[str]) -> None:
    """Some items as an export that ran out of retries leaves them (retry), others as
    a run whose messages never went out (pending, queued long ago)."""
    state = s.runner.app.state
    meta = state.read_meta(feed)
    assert meta is not None
    for bucket in state.read_buckets(feed, list(range(meta.buckets))):
        touched = False
        for key, rec in bucket.records.items():
            if key in keys:
                rec.status, rec.reason, rec.attempts = Status.RETRY, "HTTP 503", 5
                touched = True
            elif key in stale:
                rec.status, rec.run_id = Status.PENDING, "20200101T000000000Z-old"
                touched = True
        if touched:
            state.write_bucket(bucket)


@pytest.fixture
def twins(make_stack, tmp_path: Path) -> Iterator[tuple[Stack, Stack]]:
    """The featured catalog (every feed, MSI stock file) on two stacks."""
    source, _ = write_featured(tmp_path)
    env = {"FEEDS": ALL_FEEDS, "STORE_VIEWS": VIEWS, "INVENTORY_STOCKS": STOCKS}
    yield make_stack(source, **env), make_stack(source, **env)


def test_e2e_unchanged_sync_takes_the_shortcut_and_ends_as_the_full_path(twins) -> None:
    fast, full = twins
    first = fast.sync()  # every feed read once, every item sent
    full.sync()
    keys = sorted(state_of(fast)["products"])
    retry, stale = [keys[0], keys[-1]], [keys[1]]
    for s in (fast, full):
        wait_for_retry(s, "products", retry, stale)
    drop_seals(full)
    short = fast.sync()
    long = full.sync()

    assert shortcuts(first) == {None}
    assert shortcuts(short) == {first["runs"][0]["run_id"]}
    assert shortcuts(long) == {None}
    assert all(r["status"] == "completed" and r["complete"] for r in short["runs"])
    assert counts_of(short) == counts_of(long)
    products = next(r for r in short["runs"] if r["feed"] == "products")
    assert products["counts"]["requeued"] == 2  # the retries; the stale one is queued as is
    assert products["counts"]["items_read"] == 0
    assert products["counts"]["records_unchanged"] == products["counts"]["records"] > 0
    assert products["parts_enqueued"] >= 1
    assert state_of(fast) == state_of(full)
    assert snapshot_of(fast) == snapshot_of(full)
    assert held_of(fast) == held_of(full)
    waiting = {k: v for k, v in state_of(fast)["products"].items() if k in retry + stale}
    assert {v[1] for v in waiting.values()} == {"sent"}  # resent by the export


def test_e2e_a_rejected_record_stays_kept_and_reported(make_stack, tmp_path: Path) -> None:
    """A product whose row turned bad keeps its items (and a retry of one of them
    waits as it is, as the full path leaves it); its issue is reported again."""
    fast, full = make_stack(catalog(tmp_path, "a.csv")), make_stack(catalog(tmp_path, "b.csv"))
    for s, name in ((fast, "a.csv"), (full, "b.csv")):
        s.sync()
        edit(tmp_path / name, "MH01-XS-Gray", price="not a price")
    sealed = fast.sync()
    full.sync()
    assert sealed["runs"][0]["counts"]["rejected"] == 1
    kept = [k for k in state_of(fast)["products"] if k.startswith("MH01-XS-Gray")]
    other = [k for k in state_of(fast)["products"] if k.startswith("MH01-XS-Black")]
    for s in (fast, full):
        wait_for_retry(s, "products", kept + other, [])
    drop_seals(full)
    short, long = fast.sync(), full.sync()
    assert shortcuts(short) == {sealed["runs"][0]["run_id"]}
    assert counts_of(short) == counts_of(long)
    assert short["runs"][0]["counts"]["kept"] == len(kept) > 0
    assert short["runs"][0]["issues"] == long["runs"][0]["issues"] != []
    assert state_of(fast) == state_of(full)
    assert snapshot_of(fast) == snapshot_of(full)
    assert held_of(fast) == held_of(full)


def test_e2e_shortcut_runs_show_in_status(make_stack, tmp_path: Path) -> None:
    s = make_stack(catalog(tmp_path))
    first = s.sync()
    second = s.sync()
    assert shortcuts(second) == {first["runs"][0]["run_id"]}
    lines: list[str] = []
    print_status(collect_status(s.runner.app.state, "products"), lines.append)
    assert f"source unchanged since run {first['runs'][0]['run_id']}" in "\n".join(lines)


def test_e2e_one_changed_byte_in_a_description_goes_the_full_path(make_stack, tmp_path) -> None:
    path = catalog(tmp_path)
    s = make_stack(path)
    sealed = s.sync()["runs"][0]["run_id"]
    assert shortcuts(s.sync()) == {sealed}
    edit(path, "MH01-XS-Black", description="Soft cotton fleecE")  # same size
    changed = s.sync()
    assert shortcuts(changed) == {None}
    assert changed["runs"][0]["counts"]["changed"] == 1
    held = s.held()[("MH01-XS-Black", "default")]
    assert held["description"] == "Soft cotton fleecE"
    assert shortcuts(s.sync()) == {changed["runs"][0]["run_id"]}  # sealed again


def test_e2e_a_changed_stock_sources_file_goes_the_full_path(twins, tmp_path: Path) -> None:
    s, _ = twins
    sealed = s.sync()["runs"][0]["run_id"]
    assert shortcuts(s.sync()) == {sealed}
    stock = tmp_path / "stock_sources.csv"
    text = stock.read_text(encoding="utf-8")
    assert "default,SYN-01,1,1.0000\n" in text
    stock.write_text(text.replace("default,SYN-01,1,1.0000", "default,SYN-01,1,7.0000"))
    result = s.sync()
    assert shortcuts(result) == {None}
    stock_run = next(r for r in result["runs"] if r["feed"] == "inventoryStockStatus")
    products_run = next(r for r in result["runs"] if r["feed"] == "products")
    assert stock_run["counts"]["changed"] + products_run["counts"]["changed"] >= 1


def test_e2e_other_store_views_or_a_builder_version_bump_go_the_full_path(
    make_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = make_stack(catalog(tmp_path), STORE_VIEWS="default:base")
    sealed = s.sync()["runs"][0]["run_id"]
    assert shortcuts(s.sync()) == {sealed}

    wider = Stack(s.stack, STORE_VIEWS="default:base,fr:base")
    result = wider.sync()
    assert shortcuts(result) == {None}
    assert result["runs"][0]["counts"]["new"] > 0  # the fr items
    assert shortcuts(wider.sync()) == {result["runs"][0]["run_id"]}

    bumped = dataclasses.replace(PRODUCTS, version=PRODUCTS.version + 1)
    monkeypatch.setitem(registry._REGISTRY, "products", bumped)
    result = wider.sync()
    assert shortcuts(result) == {None}
    assert result["runs"][0]["counts"]["unchanged"] > 0


def test_e2e_a_price_window_that_opens_ends_the_shortcut(make_stack, tmp_path: Path) -> None:
    path = catalog(tmp_path)
    edit(path, "MH01-XS-Black", special_price="40.0000", special_price_from_date="4/1/24")
    s = make_stack(path)
    app = s.runner.app

    def sync_at(day: datetime) -> dict[str, Any]:
        app.clock = lambda: day
        return s.sync()

    sealed = sync_at(datetime(2024, 3, 15, 12, tzinfo=UTC))["runs"][0]["run_id"]
    seal = app.state.read_meta("products").source_seal  # type: ignore[union-attr]
    assert seal is not None and seal["until"] == datetime(2024, 4, 1, tzinfo=UTC).timestamp()
    before = s.held()[("MH01-XS-Black", "default")]
    assert shortcuts(sync_at(datetime(2024, 3, 31, 23, tzinfo=UTC))) == {sealed}
    opened = sync_at(datetime(2024, 4, 2, 12, tzinfo=UTC))
    assert shortcuts(opened) == {None}
    assert opened["runs"][0]["counts"]["changed"] >= 1
    after = s.held()[("MH01-XS-Black", "default")]
    assert after != before and "40" in orjson.dumps(after).decode()


def test_e2e_no_shortcut_after_a_held_or_incomplete_run(make_stack, tmp_path: Path) -> None:
    path = catalog(tmp_path)
    s = make_stack(path)
    sealed = s.sync()["runs"][0]["run_id"]
    assert shortcuts(s.sync()) == {sealed}
    header, rows = rows_of(path)
    write_rows(path, header, rows[:3])  # most products gone: the guard holds the deletions
    held = s.sync()
    assert held["runs"][0]["status"] == "held"
    again = s.sync()
    assert shortcuts(again) == {None} and again["runs"][0]["status"] == "held"

    write_rows(path, header, rows)
    with path.open("a", encoding="utf-8") as f:
        f.write('TRUNC-1,,Top,simple,"unclosed')  # cut off: the read is incomplete
    s.sync()
    incomplete = s.sync()
    assert shortcuts(incomplete) == {None} and not incomplete["runs"][0]["complete"]


def test_e2e_by_ids_resync_and_dry_run(make_stack, tmp_path: Path) -> None:
    s = make_stack(catalog(tmp_path))
    sealed = s.sync()["runs"][0]["run_id"]
    dry = s.runner.reindex({"action": "sync", "dryRun": True})
    assert shortcuts(dry) == {None} and dry["runs"][0]["counts"]["unchanged"] > 0
    assert shortcuts(s.sync()) == {sealed}  # a dry run changes nothing
    s.resync("products", byIds=["MH01-XS-Black"])
    after = s.sync()
    assert shortcuts(after) == {None}  # a partial read cleared the seal
    assert shortcuts(s.sync()) == {after["runs"][0]["run_id"]}


def test_e2e_an_s3_catalog_is_digested_from_its_streamed_bytes(make_stack, tmp_path) -> None:
    path = catalog(tmp_path)
    s = make_stack(None)
    s3 = s.runner.app.client("s3")
    bucket = s.runner.app.settings.snapshot_bucket
    s3.put_object(Bucket=bucket, Key="in/catalog.csv", Body=path.read_bytes())
    s = Stack(s.stack, CATALOG_SOURCE=f"s3://{bucket}/in/catalog.csv")
    sealed = s.sync()["runs"][0]["run_id"]
    assert shortcuts(s.sync()) == {sealed}
    edit(path, "MH01-XS-Black", description="Soft cotton fleecE")
    s3.put_object(Bucket=bucket, Key="in/catalog.csv", Body=path.read_bytes())
    result = s.sync()
    assert shortcuts(result) == {None} and result["runs"][0]["counts"]["changed"] == 1


def test_e2e_a_file_written_just_now_is_not_sealed(
    make_stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write in the same timestamp tick as the last one would not change the file's
    identity: a file written less than SETTLE_SECONDS ago seals nothing."""
    monkeypatch.setattr(digest, "SETTLE_SECONDS", 3600.0)
    s = make_stack(catalog(tmp_path))
    s.sync()
    assert shortcuts(s.sync()) == {None}
    assert s.runner.app.state.read_meta("products").source_seal is None  # type: ignore[union-attr]


def test_e2e_aco_unchanged_sync_ends_as_the_full_path(aco_stack) -> None:  # noqa: F811
    """The ACO target (every ACO feed, aggregate metadata and categories among them):
    the same state, snapshots and emulator content as the full path."""
    fast, full = aco_stack(SMALL), aco_stack(SMALL)
    first = fast.sync()
    full.sync()
    keys = sorted(state_of(fast)["acoProducts"])
    for s in (fast, full):
        wait_for_retry(s, "acoProducts", [keys[0], keys[-1]], [keys[1]])
    drop_seals(full)
    short, long = fast.sync(), full.sync()
    assert shortcuts(short) == {first["runs"][0]["run_id"]}
    assert shortcuts(long) == {None}
    assert counts_of(short) == counts_of(long)
    assert state_of(fast) == state_of(full)
    assert snapshot_of(fast) == snapshot_of(full)
    feeds = fast.runner.app.settings.feed_names()
    assert {f: fast.held(f) for f in feeds} == {f: full.held(f) for f in feeds}
    assert fast.refused() == {} and full.refused() == {}


def test_e2e_a_write_during_the_read_stores_no_seal(make_stack, tmp_path: Path) -> None:
    """The file is written while the run reads it (here: just after pass 1, put back
    byte for byte): its identity changed, so the run cannot vouch that its read saw the
    digested bytes, and stores no seal; the next sync reads again and seals."""
    path = catalog(tmp_path)
    s = make_stack(path)
    original = path.read_bytes()
    writes: list[int] = []

    def rewrite(stage: str, done: int, total: int | None) -> None:
        if stage == "read" and total is not None and not writes:
            path.write_bytes(original.replace(b"Soft cotton", b"Soft c0tton"))
            path.write_bytes(original)
            writes.append(done)

    runner = LocalRunner(s.env, progress=rewrite)
    runner.reindex({"action": "sync"})
    runner.drain()
    assert writes and path.read_bytes() == original
    assert s.runner.app.state.read_meta("products").source_seal is None  # type: ignore[union-attr]
    again = s.sync()
    assert shortcuts(again) == {None}
    assert shortcuts(s.sync()) == {again["runs"][0]["run_id"]}


def test_e2e_no_shortcut_after_a_failed_run(make_stack, tmp_path: Path) -> None:
    """A run that failed after the seal (say a shortcut run whose requeue met an error)
    may have left the feed half done: the next sync reads the source."""
    s = make_stack(catalog(tmp_path))
    sealed = s.sync()["runs"][0]["run_id"]
    assert shortcuts(s.sync()) == {sealed}
    now = datetime.now(UTC)
    s.runner.app.state.put_run(
        RunRecord(
            feed="products", run_id=f"{run_id_of(now)}-f00dfeed", kind="sync",
            status="failed", started_at=now.isoformat(), error="RetryableError: throttled",
        )
    )  # fmt: skip
    after = s.sync()
    assert shortcuts(after) == {None}
    assert shortcuts(s.sync()) == {after["runs"][0]["run_id"]}
