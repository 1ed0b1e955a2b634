"""The diff writes buckets in threads while it goes on (`diff._Writes`): a bucket that
another writer changes between the run's read and its write is diffed again from a
fresh read, whatever that read finds (a deletion included), and the state reads of the
next chunk go ahead of the diff without reading a bucket twice."""

from __future__ import annotations

from typing import Any

import pytest

from catalog_sync.feeds.registry import get_feed
from catalog_sync.sync import diff as diff_module
from catalog_sync.sync.canonical import encode
from catalog_sync.sync.state import ItemState, PreparedWrite, Status
from tests.fakes import MemoryState
from tests.unit.test_deletion_guard import World, _counting_reads
from tests.unit.test_sync_usecases import catalog


class Interfering(MemoryState):
    """Another writer changes the bucket holding `sku` right before the run's first
    write of it (`change(bucket)`), so that write meets a newer version."""

    def __init__(self, sku: str, change: Any) -> None:
        super().__init__()
        self.sku, self.change = sku, change
        self.armed = False
        self.conflicts = 0

    def write_prepared(self, write: PreparedWrite, *, drop_folded: bool = True) -> None:
        if self.armed:
            [bucket] = self.read_buckets(write.feed, [write.bucket])
            if any(k.startswith(self.sku) for k in bucket.record_keys()):
                self.armed = False
                self.change(bucket)
                super().write_bucket(bucket)  # the other writer's, version + 1
                self.conflicts += 1
        super().write_prepared(write, drop_folded=drop_folded)


def _touch(bucket: Any) -> None:
    """As an export recording an outcome would: a record's reason changes."""
    other = next(k for k in bucket.record_keys() if not k.startswith("SKU-002"))
    rec = bucket.get(other)
    rec.reason = "touched"


def _world(change: Any) -> tuple[World, Interfering]:
    w = World()
    w.state = Interfering("SKU-002", change)
    w.sync(catalog(20))
    return w, w.state


def test_a_bucket_written_under_the_run_is_diffed_again_and_both_changes_stand() -> None:
    w, state = _world(_touch)
    twin = World()
    twin.sync(catalog(20))
    state.armed = True
    run = w.sync(catalog(20, **{"SKU-002": 50})).run
    plain = twin.sync(catalog(20, **{"SKU-002": 50})).run
    assert state.conflicts == 1 and not state.armed
    assert run.status == plain.status == "completed"
    assert run.counts == plain.counts and run.counts["changed"] == 2  # two store views
    records = state.all_records("toy")
    assert [k for k, r in records.items() if r.reason == "touched"]  # the other writer's
    changed = {k: r for k, r in records.items() if k.startswith("SKU-002")}
    assert {r.hash for r in changed.values()} == {
        r.hash for k, r in twin.state.all_records("toy").items() if k.startswith("SKU-002")
    }
    assert w.sent() == twin.sent()


@pytest.mark.parametrize("ready_bytes", [1 << 20, 0])  # 0: the second pass reads it again
def test_a_bucket_diffed_again_that_now_has_a_deletion_is_deferred_with_its_items(
    monkeypatch: pytest.MonkeyPatch, ready_bytes: int
) -> None:
    """The fresh read finds an item this run did not read (another writer added it): the
    bucket is deferred, and the second pass writes it as kept or diffs it again with the
    items the run read (not dropped with the write that failed): only that item goes."""
    monkeypatch.setattr(diff_module, "READY_BYTES", ready_bytes)
    stray = "SKU-999\x1fdefault"

    def add(bucket: Any) -> None:
        h = encode(spec, spec.tombstone(stray, w.clock())).hash  # any hash will do
        bucket.add(stray, ItemState(h, Status.SENT, sent_hash=h, changed_at="x", run_id="x"))

    spec = get_feed("toy")
    w, state = _world(add)
    state.armed = True
    run = w.sync(catalog(20, **{"SKU-002": 50})).run
    assert state.conflicts == 1
    assert run.status == "completed"
    assert run.counts["deleted"] == 1 and run.counts["changed"] == 2
    assert w.live() == {f"SKU-{i:03d}\x1f{v}" for i in range(20) for v in ("default", "fr")}
    assert state.all_records("toy")[stray].deleted


def test_the_next_chunk_is_read_ahead_and_no_bucket_is_read_twice(monkeypatch) -> None:
    monkeypatch.setattr(diff_module, "STATE_READ_CHUNK", 2)
    w = World()
    w.sync(catalog(40))
    reads = _counting_reads(w)
    ahead: list[int] = []
    read_ahead = diff_module._Prefetch.start

    def start(self: Any, numbers: list[int]) -> None:
        ahead.extend(numbers)
        read_ahead(self, numbers)

    monkeypatch.setattr(diff_module._Prefetch, "start", start)
    run = w.sync([r for r in catalog(40, **{"SKU-003": 1}) if r.sku != "SKU-000"]).run
    assert run.status == "completed" and run.counts["deleted"] == 2
    assert ahead == list(range(2, 8))  # every chunk but the first, read ahead
    first_pass = reads[:8]
    assert sorted(first_pass) == list(range(8))  # each bucket read once by the first pass
