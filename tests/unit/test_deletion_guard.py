"""The mass-deletion guard: its limits, and the engine holding a run's deletions
(the rest of the run applies), holding them again, and applying them when confirmed."""

from __future__ import annotations

import orjson
import pytest

from catalog_sync.errors import RequestError
from catalog_sync.feeds.registry import get_feed
from catalog_sync.sync import diff as diff_module
from catalog_sync.sync.export import ExportDeps, export_part, prerequisites_pending
from catalog_sync.sync.guard import DeletionGuard
from catalog_sync.sync.reindex import ReindexDeps, ReindexRequest, reindex_feed
from catalog_sync.sync.requests import ReindexEvent
from catalog_sync.sync.runs import PartResult, RunRecord
from catalog_sync.sync.snapshot import Manifest, read_bucket_items
from catalog_sync.sync.state import Status
from tests.fakes import Clock, Ids, ListSource, MemoryBlobs, MemoryQueue, MemoryState, ScriptedSink
from tests.unit.test_sync_usecases import VIEWS, catalog
from tests.unit.toyfeed import ToyRecord

# --- the limits -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("guard", "deletions", "live", "held"),
    [
        (DeletionGuard(), 0, 0, False),  # nothing to delete
        (DeletionGuard(), 0, 100, False),
        (DeletionGuard(), 10, 100, False),  # exactly the fraction: allowed
        (DeletionGuard(), 11, 100, True),  # more than 10 %
        (DeletionGuard(), 1, 5, True),  # 20 % of a small feed
        (DeletionGuard(max_fraction=0.5), 40, 100, False),
        (DeletionGuard(max_fraction=0.5), 51, 100, True),
        (DeletionGuard(max_fraction=1.0), 99, 100, False),
        (DeletionGuard(max_fraction=1.0), 100, 100, True),  # every live item: always held
        (DeletionGuard(max_fraction=1.0), 1, 1, True),  # even a feed of one item
        (DeletionGuard(max_deletes=5), 5, 1000, False),
        (DeletionGuard(max_deletes=5), 6, 1000, True),  # the absolute bound
        (DeletionGuard(max_fraction=1.0, max_deletes=0), 1, 1000, True),
    ],
)
def test_guard_limits(guard: DeletionGuard, deletions: int, live: int, held: bool) -> None:
    verdict = guard.verdict(deletions, live)
    assert (verdict is not None) == held, verdict


def test_guard_says_why() -> None:
    assert DeletionGuard().verdict(30, 100) == (
        "30 of 100 live items (30%) is more than MAX_DELETE_FRACTION=0.1"
    )
    assert DeletionGuard(max_deletes=2).verdict(3, 1000) == (
        "3 deletions is more than MAX_DELETES=2"
    )
    assert "every one of the feed's 7 live items" in str(DeletionGuard().verdict(7, 7))


# --- the event option ----------------------------------------------------------------


def test_confirm_deletions_is_a_resync_option_of_runs_that_read() -> None:
    event = ReindexEvent.parse({"action": "resync", "feed": "products", "confirmDeletions": True})
    assert event.to_request(("products",)).confirm_deletions
    for ok in ({"cleanupFeed": True}, {"byIds": ["A"]}, {"continueResync": True}, {"dryRun": True}):
        assert ReindexEvent.parse(
            {"action": "resync", "feed": "products", "confirmDeletions": True, **ok}
        ).confirm_deletions
    with pytest.raises(RequestError, match="only a resync takes"):
        ReindexEvent.parse({"action": "sync", "confirmDeletions": True})
    for flag, name in (("--no-reindex", "noReindex"), ("--failed-only", "failedOnly")):
        with pytest.raises(RequestError, match=f"{flag} reads no source"):
            ReindexEvent.parse(
                {"action": "resync", "feed": "products", "confirmDeletions": True, name: True}
            )


# --- the engine -------------------------------------------------------------------


class World:
    def __init__(self, guard: DeletionGuard | None = None) -> None:
        self.state = MemoryState()
        self.blobs = MemoryBlobs()
        self.queue = MemoryQueue()
        self.sink = ScriptedSink()
        self.clock = Clock()
        self.ids = Ids()
        self.guard = guard or DeletionGuard()
        self.checkpoints: list[int] = []

    def sync(self, entries, **req):
        deps = ReindexDeps(
            state=self.state,
            blobs=self.blobs,
            queue=self.queue,
            clock=self.clock,
            new_id=self.ids,
            source=ListSource(entries),
            store_views=VIEWS,
            buckets=8,
            guard=self.guard,
        )
        result = reindex_feed(ReindexRequest(feeds=("toy",), **req), deps)[0]
        self.sink.calls.clear()
        export = ExportDeps(state=self.state, blobs=self.blobs, sink=self.sink, clock=self.clock)
        for m in self.queue.drain():
            export_part(m, export)
        return result

    def live(self) -> set[str]:
        return {k for k, r in self.state.all_records("toy").items() if not r.deleted}

    def sent(self) -> set[str]:
        return {k for call in self.sink.calls for k in call}

    def snapshot(self, run) -> set[str]:
        manifest = orjson.loads(self.blobs.objects[run.manifest])
        keys: set[str] = set()
        for part in Manifest.model_validate(manifest).parts:  # a full part and its deltas
            keys.update(k for k, _, _ in read_bucket_items(self.blobs, part))
        return keys


def _keys(skus) -> set[str]:
    return {f"{s}\x1f{view}" for s in skus for view, _ in VIEWS}


def test_a_header_only_read_deletes_nothing_and_the_run_is_held() -> None:
    w = World(DeletionGuard(max_fraction=1.0))  # even the loosest fraction
    w.sync(catalog(10))
    everything = w.live()

    run = w.sync([]).run  # a complete read of zero products

    assert run.status == "held"
    assert run.counts["deletions_held"] == 20 and run.counts["deleted"] == 0
    assert "every one of the feed's 20 live items" in str(run.held)
    assert w.live() == everything  # still live in the state
    assert w.snapshot(run) == everything  # and in the run's snapshot
    assert w.sent() == set()  # nothing sent, no deletion


def test_held_deletions_the_rest_of_the_run_applies_held_again_then_confirmed() -> None:
    w = World()
    w.sync(catalog(10))
    edited = catalog(10, **{"SKU-001": 99})
    edited = [r for r in edited if r.sku not in ("SKU-004", "SKU-007")] + [ToyRecord("N", "n", 1)]

    run = w.sync(edited).run  # 4 of 20 items (20 %) would go

    assert run.status == "held" and run.counts["deletions_held"] == 4
    assert (run.counts["new"], run.counts["changed"], run.counts["deleted"]) == (2, 2, 0)
    assert w.sent() == _keys(["SKU-001", "N"])  # new and changed went out
    assert _keys(["SKU-004", "SKU-007"]) <= w.live() <= w.snapshot(run)
    records = w.state.all_records("toy")
    assert all(records[k].status is Status.SENT for k in _keys(["SKU-004", "SKU-007"]))

    again = w.sync(edited).run  # the next ordinary sync holds them again
    assert again.status == "held" and again.counts["deletions_held"] == 4
    assert w.sent() == set()

    confirmed = w.sync(edited, mode="resync", confirm_deletions=True).run
    assert confirmed.status == "completed" and confirmed.held is None
    assert confirmed.counts["deleted"] == 4 and confirmed.counts["deletions_held"] == 0
    assert not (_keys(["SKU-004", "SKU-007"]) & w.live())
    assert _keys(["SKU-004", "SKU-007"]) <= w.sent()  # the deletions went out
    assert not (_keys(["SKU-004", "SKU-007"]) & w.snapshot(confirmed))


def test_deletions_within_the_limits_are_applied_with_one_write_per_bucket() -> None:
    w = World()
    w.sync(catalog(20))  # 40 items
    edited = catalog(20, **{"SKU-002": 50})
    edited = [r for r in edited if r.sku != "SKU-011"]
    writes = w.state.writes

    run = w.sync(edited, mode="resync").run  # a resync: every bucket written

    assert run.status == "completed" and run.held is None
    assert run.counts["deleted"] == 2 and run.counts["deletions_held"] == 0
    assert run.counts["changed"] == 2 and run.counts["requeued"] == 36
    buckets = {b for (f, b) in w.state.buckets if f == "toy"}
    # each bucket written once by the reindex (its exports write it once more)
    assert w.state.writes - writes == 2 * len(buckets)
    assert run.buckets_done == 8
    assert not (_keys(["SKU-011"]) & w.live())


def test_max_deletes_holds_a_run_under_the_fraction() -> None:
    w = World(DeletionGuard(max_fraction=1.0, max_deletes=1))
    w.sync(catalog(10))
    run = w.sync(catalog(9)).run  # 2 items of SKU-009
    assert run.status == "held" and run.counts["deletions_held"] == 2
    assert "MAX_DELETES=1" in str(run.held)


def test_a_dry_run_says_it_would_hold_and_lists_each_change_once() -> None:
    w = World()
    w.sync(catalog(10))
    writes = w.state.writes
    edited = [r for r in catalog(10, **{"SKU-001": 5}) if r.sku not in ("SKU-003", "SKU-008")]

    run_result = reindex_feed(
        ReindexRequest(feeds=("toy",), dry_run=True),
        ReindexDeps(
            state=w.state, blobs=w.blobs, queue=w.queue, clock=w.clock, new_id=w.ids,
            source=ListSource(edited), store_views=VIEWS, buckets=8, guard=w.guard,
        ),
    )[0]  # fmt: skip

    assert run_result.run.held and run_result.run.counts["deletions_held"] == 4
    assert run_result.preview["changed"] == ["SKU-001 / default", "SKU-001 / fr"]
    assert run_result.preview["deleted"] == []
    assert w.state.writes == writes


@pytest.mark.parametrize("status", ["completed", "held"])
def test_a_held_prerequisite_run_still_holds_its_dependents_back(status: str) -> None:
    """A held run queued its messages like a completed one: an ACO products part
    waits until that run's metadata parts are exported."""
    w = World()
    now = w.clock()
    run = RunRecord(
        feed="acoProductMetadata", run_id="r1", kind="sync", status=status,
        started_at=now.isoformat(), parts_enqueued=1,
    )  # fmt: skip
    w.state.put_run(run)
    deps = ExportDeps(state=w.state, blobs=w.blobs, sink=w.sink, clock=w.clock)
    spec = get_feed("acoProducts")
    assert prerequisites_pending(spec, deps) == "acoProductMetadata"
    w.state.put_part_result(
        PartResult(feed="acoProductMetadata", run_id="r1", bucket=0, finished_at=now.isoformat())
    )
    assert prerequisites_pending(spec, deps) is None


# --- the second pass writes what the first kept ---------------------------------------


def _counting_reads(w: World) -> list[int]:
    reads: list[int] = []
    read = w.state.read_buckets

    def counting(feed, buckets):
        reads.extend(buckets)
        return read(feed, buckets)

    w.state.read_buckets = counting  # type: ignore[method-assign]
    return reads


class _Between:
    """A guard that calls `hook` when asked for its verdict (between the passes)."""

    def __init__(self, guard: DeletionGuard, hook) -> None:
        self.guard, self.hook = guard, hook

    def verdict(self, total: int, live: int) -> str | None:
        self.hook()
        return self.guard.verdict(total, live)


def _deletion_run(monkeypatch, ready_bytes: int, guard: DeletionGuard | None = None, between=None):
    """A sync deleting SKU-011 (and changing SKU-002) after a first sync of 20 products:
    what it stored, what it sent, and the state reads of its reindex."""
    monkeypatch.setattr(diff_module, "READY_BYTES", ready_bytes)
    w = World(guard)
    w.sync(catalog(20))
    edited = [r for r in catalog(20, **{"SKU-002": 50}) if r.sku not in ("SKU-011", "SKU-016")]
    if between is not None:  # runs when the guard gives its verdict, between the passes
        w.guard = _Between(w.guard, lambda: between(w))  # type: ignore[assignment]
    reads = _counting_reads(w)
    run = w.sync(edited).run
    return {
        "run": (run.status, run.held, run.counts, run.buckets_done),
        "buckets": dict(w.state.buckets),
        "blobs": dict(w.blobs.objects),
        "sent": w.sent(),
        "reads": list(reads),
    }


def test_deferred_buckets_are_written_as_the_first_pass_kept_them(monkeypatch) -> None:
    """Deletions within the limits: the second pass writes the buckets the first pass
    diffed and kept (no second read), storing and sending what diffing them again does."""
    kept = _deletion_run(monkeypatch, 1 << 20)
    again = _deletion_run(monkeypatch, 0)  # no room to keep them: read and diffed again
    assert kept["run"][0] == "completed" and kept["run"][2]["deleted"] == 4
    for name in ("run", "buckets", "blobs", "sent"):
        assert kept[name] == again[name], name
    # the reindex reads each bucket once (the exports read them after it); diffed again,
    # the deferred buckets twice
    assert len(kept["reads"]) < len(again["reads"])
    assert sorted(set(kept["reads"])) == sorted(set(again["reads"]))


def test_a_held_verdict_drops_what_the_first_pass_kept_and_wrote(monkeypatch) -> None:
    guard = DeletionGuard(max_deletes=1)  # 4 deletions: held
    kept = _deletion_run(monkeypatch, 1 << 20, guard)
    again = _deletion_run(monkeypatch, 0, DeletionGuard(max_deletes=1))
    assert kept["run"][0] == "held" and kept["run"][2]["deletions_held"] == 4
    for name in ("run", "buckets", "blobs", "sent"):  # no part of applied deletions is left
        assert kept[name] == again[name], name


def test_a_bucket_written_between_the_passes_is_diffed_again(monkeypatch) -> None:
    """The kept bucket's write is conditional on the version it was read at: a bucket
    another writer changed meanwhile is read and diffed again, and both changes stand."""

    def touch(w: World) -> None:  # a bucket with a deletion changes under the run
        for bucket in w.state.read_buckets("toy", range(8)):
            keys = list(bucket.record_keys())
            if any(k.startswith("SKU-011") for k in keys):
                other = next(k for k in keys if not k.startswith(("SKU-011", "SKU-016", "SKU-002")))
                rec = bucket.get(other)
                assert rec is not None
                rec.reason = "touched"  # as an export recording an outcome would
                w.state.write_bucket(bucket)

    kept = _deletion_run(monkeypatch, 1 << 20, between=touch)
    again = _deletion_run(monkeypatch, 0, between=touch)
    assert kept["run"] == again["run"] and kept["run"][2]["deleted"] == 4
    assert kept["buckets"] == again["buckets"] and kept["sent"] == again["sent"]
    touched = [data for (feed, _), (_, data) in kept["buckets"].items() if b"touched" in data]
    assert len(touched) == 1  # the other writer's change stands, with the deletion
