"""A partitioned export CSV compiled in worker processes gives exactly what a
serial read gives: the same state, snapshot, counts and issues, in every feed."""

from __future__ import annotations

import csv
import gzip
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import BuildContext
from catalog_sync.infra.spill import BucketSpill
from catalog_sync.infra.workers import WorkerError, compile_partitions, resolve_workers
from catalog_sync.records import SourceIssue
from catalog_sync.sources.magento_csv import MagentoCsvSource
from catalog_sync.sync import readstep as reindex_module  # where the read calls it
from catalog_sync.sync.compile import Collector
from catalog_sync.sync.reindex import ReindexDeps, ReindexRequest, reindex_feed
from devstack import synth
from tests.fakes import FEEDS, Clock, Ids, MemoryBlobs, MemoryQueue, MemoryState

VIEWS = (("default", "base"), ("fr", "base"), ("de", "base"))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic catalog with a few bad rows mixed in."""
    folder = tmp_path_factory.mktemp("workers")
    clean = folder / "clean.csv"
    synth.generate(clean, 400, seed=5, store_views=("fr", "de"))
    with open(clean, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    col = {name: i for i, name in enumerate(header)}
    globals_ = [r for r in rows[1:] if not r[col["store_view_code"]]]
    globals_[10][col["price"]] = "12,5O"  # not a number: rejected
    globals_[20][col["product_type"]] = "kit"  # unknown type: rejected
    globals_[30][col["special_price_from_date"]] = "someday"  # a warning
    rows.append(list(globals_[40]))  # a duplicate row
    out = folder / "catalog.csv"
    with open(out, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return out


def _sync(catalog: Path, workers: int, work: Path, ranges: bool = False) -> dict[str, Any]:
    state, blobs, queue = MemoryState(), MemoryBlobs(), MemoryQueue()
    work.mkdir()
    source = MagentoCsvSource(
        str(catalog),
        workdir=work,
        partition_bytes=40_000,
        workers=workers if ranges else 1,
        parallel_bytes=0,
    )
    deps = ReindexDeps(
        state=state,
        blobs=blobs,
        queue=queue,
        clock=Clock(),
        new_id=Ids(),
        source=source,
        store_views=VIEWS,
        buckets=8,
        workdir=work,
        workers=workers,
    )
    results = reindex_feed(ReindexRequest(feeds=FEEDS, mode="resync"), deps)
    out: dict[str, Any] = {"messages": len(queue.drain())}
    for r in results:
        feed = r.run.feed
        snapshot = {}
        for key, data in blobs.objects.items():
            if key.startswith(f"snapshots/{feed}/") and key.endswith(".jsonl.gz"):
                for line in gzip.decompress(data).splitlines():
                    rec = orjson.loads(line)
                    snapshot[rec["k"]] = (rec["h"], rec["i"])
        out[feed] = {
            "counts": r.run.counts,
            "issues": r.run.issues,
            "state": {k: (v.hash, v.status.value) for k, v in state.all_records(feed).items()},
            "snapshot": snapshot,
        }
    assert not list(work.iterdir()), "temporary files left behind"
    out["ranges"] = source.ranges
    return out


def test_workers_compile_the_same_feeds_as_a_serial_read(
    catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, int]] = []

    def spy(partitions: list[Any], collectors: list[Collector], ctx: Any, n: int, **kw: Any) -> int:
        calls.append((len(partitions), n))
        return compile_partitions(partitions, collectors, ctx, n, **kw)

    monkeypatch.setattr(reindex_module, "compile_partitions", spy)
    serial = _sync(catalog, 1, tmp_path / "serial")
    assert calls == []
    parallel = _sync(catalog, 3, tmp_path / "parallel")
    assert len(calls) == 1 and calls[0][0] > 3 and calls[0][1] == 3

    products = serial["products"]
    assert products["counts"]["records"] > 350
    assert products["counts"]["rejected"] == 3  # bad price, unknown type, duplicate row
    issues = products["issues"]
    assert any("not a number" in i["message"] and i["field"] == "price" for i in issues)
    assert any("duplicate row" in i["message"] for i in issues)
    assert any(
        i["severity"] == "warning" and i["field"] == "special_price_from_date" for i in issues
    )
    for feed in FEEDS:
        assert parallel[feed] == serial[feed], feed
        assert serial[feed]["snapshot"], feed
    assert parallel["messages"] == serial["messages"]
    # and pass 1 in byte ranges too: the same feeds again
    ranged = _sync(catalog, 2, tmp_path / "ranges", ranges=True)
    assert ranged["ranges"] == 2 and serial["ranges"] == 1
    for feed in FEEDS:
        assert ranged[feed] == serial[feed], feed


class _Boom:
    built = 0

    def records(self, warn: Any) -> Any:
        raise RuntimeError("partition file unreadable")


class _Dies:
    built = 0

    def records(self, warn: Any) -> Any:
        os._exit(3)


class _Empty:
    built = 0

    def records(self, warn: Any) -> Any:
        return iter(())


@pytest.mark.parametrize(
    ("partition", "expected"),
    [
        (_Boom(), "worker 1 failed: RuntimeError: partition file unreadable"),
        (_Dies(), "worker 1 ended (exit code 3)"),
    ],
)
def test_a_failing_worker_fails_the_read(tmp_path: Path, partition: Any, expected: str) -> None:
    spec = get_feed("products")
    collectors = [Collector(spec, BucketSpill(tmp_path, 4))]
    ctx = BuildContext(now=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(WorkerError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        compile_partitions([_Empty(), partition], collectors, ctx, 2, merge=lambda n, w: None)


class _Warns:
    """A partition that builds nothing and warns once, naming itself."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.built = 0

    def records(self, warn: Any) -> Any:
        warn(SourceIssue(f"partition {self.index}", severity="warning"))
        self.built = self.index
        return iter(())


@pytest.mark.parametrize(("stop_at", "handed"), [(None, 9), (1, 2), (3, 4)])
def test_the_pool_builds_the_first_partitions_until_stop_and_merges_them_in_order(
    tmp_path: Path, stop_at: int | None, handed: int
) -> None:
    """Two workers, 9 partitions: the first two are handed out at once, then one more
    each time a worker asks, until `stop()` (asked after each partition) says True;
    what they report is merged in partition order, as a serial read merges it."""
    collectors = [Collector(get_feed("products"), BucketSpill(tmp_path, 4))]
    ctx = BuildContext(now=datetime(2026, 1, 1, tzinfo=UTC))
    merged: list[tuple[int, list[str]]] = []
    prepared: list[int] = []
    asked = []

    def stop() -> bool:
        asked.append(True)
        return stop_at is not None and len(asked) >= stop_at

    done = compile_partitions(
        [_Warns(i) for i in range(9)], collectors, ctx, 2,
        merge=lambda n, w: merged.append((n, [i.message for i in w])),
        prepare=prepared.append, stop=stop,
    )  # fmt: skip
    assert done == handed
    assert prepared == list(range(handed))
    assert merged == [(i, [f"partition {i}"]) for i in range(handed)]
    assert len(asked) == (stop_at or handed)  # after each partition built, until True


def test_workers_setting() -> None:
    assert resolve_workers(1) == 1
    assert resolve_workers(3) == 3
    assert 1 <= resolve_workers(0) <= 4
