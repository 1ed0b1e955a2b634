"""The reindex use-case: source → feed items → hash → diff with the state →
snapshot parts + state + export messages.

Order of writes, so that a crash anywhere loses nothing: per bucket, its snapshot
part then its state (see `diff`); after all buckets, the manifest, the feed meta
(latest manifest, last run, source watermark: one write, under the lease) and the
export messages. A crash before the messages leaves items `pending` in the state;
the next run queues every bucket that has items to send, so it converges.

A run is not bounded by one invocation: when the invocation's budget is spent (during
the read, at a CSV partition or a REST page (`readstep`), after it, or between chunks
of buckets), the run checkpoints what it has (see
`continuation`) and hands itself on to a follow-up invocation (`continue_run`), under
the same lease and run id. The manifest, the feed meta (with the watermark) and the
export messages of a feed are written only once its whole diff is done.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import orjson

from catalog_sync.errors import ConfigError, LeaseHeldError, NotFoundError
from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import FeedSpec
from catalog_sync.infra.spill import BucketSpill
from catalog_sync.observability import get_logger, logger
from catalog_sync.ports import CatalogSource, WindowedSource
from catalog_sync.records import ReadReport
from catalog_sync.sync.compile import Collector
from catalog_sync.sync.continuation import Budget, Carry, drop_staged, load_carry
from catalog_sync.sync.diff import Differ, run_id_of
from catalog_sync.sync.fingerprints import Encoding
from catalog_sync.sync.fingerprints import publish as publish_fingerprints
from catalog_sync.sync.handon import carried_runs, hand_on, restage, resumed_state
from catalog_sync.sync.lease import handed_on_ttl, newer_run, take_lease
from catalog_sync.sync.readstep import read_source
from catalog_sync.sync.requests import ReindexRequest
from catalog_sync.sync.runs import ContinuationMessage, FeedMeta, RunRecord
from catalog_sync.sync.runstate import FeedRun, Progress, ReindexDeps, ReindexResult, RunState
from catalog_sync.sync.scope import find_checkpoint, skus_of_product_ids
from catalog_sync.sync.snapshot import (
    Manifest,
    PartInfo,
    SplitKeys,
    export_units,
    manifest_key,
    pack_messages,
)
from catalog_sync.sync.unchanged import SourceProbe
from catalog_sync.sync.watermark import ReadMark, apply_mark
from catalog_sync.sync.windows import WindowTracker

log = get_logger(__name__)

MAX_ISSUES_IN_RUN = 100
CHECKPOINT_EVERY = 16  # buckets between checkpoints of a run

__all__ = [
    "Progress",
    "ReindexDeps",
    "ReindexRequest",
    "ReindexResult",
    "continue_run",
    "new_run_id",
    "reindex_feed",
]


def new_run_id(now: datetime, new_id: Callable[[], str]) -> str:
    return f"{run_id_of(now)}-{new_id()[:8]}"


def reindex_feed(request: ReindexRequest, deps: ReindexDeps) -> list[ReindexResult]:
    """Reindex the requested feeds from one read of the source; one run (record,
    lease, snapshot, messages) per feed."""
    specs = [get_feed(name) for name in request.feeds]
    now = deps.clock()
    run_id = new_run_id(now, deps.new_id)
    if request.product_ids and request.reads_source and deps.source is not None:
        skus = skus_of_product_ids(deps.source, request.product_ids)
        request = dataclasses.replace(request, by_ids=skus, product_ids=None)
    logger.append_keys(run_id=run_id, feed=",".join(request.feeds))
    try:
        if request.dry_run:
            return _run(_feed_runs(specs, request, deps, run_id, now), request, deps, now)[0]
        return _leased(specs, request, deps, run_id, now)
    finally:
        logger.remove_keys(["run_id", "feed"])


def _feed_runs(
    specs: list[FeedSpec],
    request: ReindexRequest,
    deps: ReindexDeps,
    run_id: str,
    now: datetime,
) -> list[FeedRun]:
    # The meta (latest manifest, bucket count) is read under the lease: read
    # earlier, a run finishing meanwhile would make it stale.
    source_name = deps.source.describe() if request.reads_source and deps.source else None
    out = []
    for spec in specs:
        meta = deps.state.read_meta(spec.name) or FeedMeta(feed=spec.name, buckets=deps.buckets)
        run = RunRecord(
            feed=spec.name,
            run_id=run_id,
            kind=request.kind,
            started_at=now.isoformat(),
            status="dry-run" if request.dry_run else "running",
            source=source_name,
            resumed_from=request.resumed_from,
        )
        out.append(FeedRun(spec, meta, run))
    return out


def _leased(
    specs: list[FeedSpec], request: ReindexRequest, deps: ReindexDeps, run_id: str, now: datetime
) -> list[ReindexResult]:
    """The run under the feeds' leases: every feed-meta write happens in here. A run
    handed on to a follow-up invocation keeps its leases."""
    leased: list[str] = []
    handed_on = False
    try:
        for spec in specs:
            take_lease(
                deps.state, spec.name, run_id, request.mode, clock=deps.clock,
                ttl_seconds=deps.lease_seconds, wait_seconds=deps.lease_wait_seconds,
                sleep=deps.sleep,
            )  # fmt: skip
            leased.append(spec.name)
        if request.mode == "resync-continue":
            resume_from, resumed = find_checkpoint(deps.state, specs[0].name)
            request = dataclasses.replace(request, resume_from=resume_from, resumed_from=resumed)
        feed_runs = _feed_runs(specs, request, deps, run_id, now)
        for fr in feed_runs:
            deps.state.put_run(fr.run)
        try:
            results, handed_on = _run(feed_runs, request, deps, now)
            return results
        except Exception as exc:
            _record_failure(feed_runs, deps, exc)
            raise
    finally:
        if not handed_on:
            for name in leased:
                deps.state.release_lease(name, run_id)


def _record_failure(feed_runs: list[FeedRun], deps: ReindexDeps, exc: Exception) -> None:
    for fr in feed_runs:
        if fr.run.status == "running":
            fr.run.status = "failed"
            fr.run.error = f"{type(exc).__name__}: {exc}"
            fr.run.finished_at = deps.clock().isoformat()
            deps.state.put_run(fr.run)


def _run(
    feed_runs: list[FeedRun], request: ReindexRequest, deps: ReindexDeps, now: datetime
) -> tuple[list[ReindexResult], bool]:
    """The first invocation of a run: read, then diff and finish each feed (or hand
    the run on); also whether it was handed on."""
    limit = None if request.dry_run or deps.continuation is None else deps.budget_seconds
    budget = Budget(deps.clock, limit)
    run_id = feed_runs[0].run.run_id
    with tempfile.TemporaryDirectory(prefix="reindex-", dir=deps.workdir) as tmp:
        workdir = Path(tmp)
        for fr in feed_runs:
            feed_dir = workdir / fr.spec.name
            feed_dir.mkdir()
            fr.collector = Collector(fr.spec, BucketSpill(feed_dir, fr.meta.buckets))
        rs = RunState(run_id, now, request, ReadReport(complete=True), None, budget, workdir)
        # the price windows a read sees, for a source read incrementally (sync/windows.py)
        rs.windows = WindowTracker(now) if isinstance(deps.source, WindowedSource) else None
        probe = SourceProbe.take(feed_runs, request, deps, now)  # sync.unchanged
        if probe.matched is not None:
            return probe.shortcut(feed_runs, deps, now, _finish), False
        if request.reads_source:
            if deps.source is None:
                raise NotFoundError("no catalog source configured (set CATALOG_SOURCE)")
            paused = read_source(feed_runs, rs, deps)
            budget.progress()
            if paused is not None:  # the read goes on in a follow-up invocation
                return hand_on(feed_runs, rs, deps, read=paused), True
        for fr in feed_runs:
            fr.c.spill.finish()
            if fr.c.found is not None and request.reads_source and not request.dry_run:
                fr.encoding = Encoding(fr.c.found, fr.c.digest)  # while the diff runs
        results, handed_on = _go_on(feed_runs, rs, deps)
        probe.seal(feed_runs, rs.report, handed_on, deps)
        return results, handed_on


def _go_on(
    feed_runs: list[FeedRun], rs: RunState, deps: ReindexDeps
) -> tuple[list[ReindexResult], bool]:
    """Diff and finish the feeds in order, as far as the budget goes; then hand the
    run on (True) or end it (False)."""
    for fr in feed_runs:
        if fr.finished:
            continue
        if not fr.diffed:
            if rs.budget.spent():
                return hand_on(feed_runs, rs, deps), True
            _diff(fr, rs, deps)
            if fr.buckets_done < fr.meta.buckets:
                return hand_on(feed_runs, rs, deps), True
            fr.diffed = True
        assert fr.differ is not None
        if rs.windows is not None and rs.request.reads_source and not rs.request.dry_run:
            full = rs.report.complete and rs.request.by_ids is None
            rs.windows.save(deps.blobs, fr.spec.name, full=full)
        fr.result = _finish(fr, fr.differ, rs.report, rs.request, deps, rs.now, rs.mark)
        fr.finished = True
        rs.budget.progress()
    if rs.sequence:
        drop_staged(deps.blobs, rs.run_id)
    return [fr.result or ReindexResult(run=fr.run) for fr in feed_runs], False


def _diff(fr: FeedRun, rs: RunState, deps: ReindexDeps) -> None:
    request = rs.request
    # An aggregate item (a category, an attribute) may have been referenced only
    # by a rejected record: no deletions for such a feed then.
    complete = rs.report.complete and not (fr.spec.aggregate and fr.c.rejected)
    differ = Differ(
        fr.spec,
        request,
        fr.run.run_id,
        rs.now,
        state=deps.state,
        blobs=deps.blobs,
        complete=complete,
        stale_pending_seconds=deps.stale_pending_seconds,
        guard=None if request.confirm_deletions else deps.guard,
    )
    if fr.carried is not None:  # an earlier invocation diffed the first buckets
        differ.counts.update(fr.carried.counts)
        differ.parts = fr.carried.part_refs()
        differ.to_export = set(fr.carried.to_export)
        differ.pending = dict(fr.carried.pending)
        differ.live = fr.carried.live
        differ.deferred = dict(fr.carried.deferred)
        differ.second_pass, differ.held = fr.carried.second_pass, fr.carried.held
    fr.differ = differ

    if request.reads_source and fr.meta.fingerprints and not request.dry_run:
        fr.meta.fingerprints = None  # until this run completes: see sync.fingerprints
        deps.state.write_meta(fr.meta)

    def checkpoint(done: int) -> None:
        fr.run.buckets_done = done  # the checkpoint `--continue-resync` resumes from
        fr.run.counts = dict(differ.counts)
        deps.state.put_run(fr.run)

    fr.buckets_done = differ.run(
        fr.c.spill if request.reads_source else None,
        fr.meta.buckets,
        rs.workdir / fr.spec.name,
        checkpoint=None if request.dry_run else checkpoint,
        checkpoint_every=CHECKPOINT_EVERY,
        progress=deps.progress,
        start=fr.buckets_done,
        stop=rs.budget.stop_after_chunk,
        ahead=rs.budget.ample,
    )


def _finish(
    fr: FeedRun,
    differ: Differ,
    report: ReadReport,
    request: ReindexRequest,
    deps: ReindexDeps,
    now: datetime,
    mark: ReadMark | None,
) -> ReindexResult:
    spec, run, meta, issues = fr.spec, fr.run, fr.meta, fr.c.issues
    counts = differ.counts
    counts["items_read"] = fr.c.spill.items
    counts["records"] = report.records
    counts["rows"] = report.rows
    counts["rejected"] = fr.c.rejected
    counts["records_unchanged"] = fr.c.unchanged_records  # not built: fingerprint known
    run.complete = differ.complete
    run.held = differ.held  # a dry run says so too
    run.counts = dict(counts)
    run.issues_total = len(issues)
    run.issues = [i.to_dict() for i in issues[:MAX_ISSUES_IN_RUN]]
    result = ReindexResult(run=run, preview=differ.preview)
    if request.dry_run:
        run.finished_at = deps.clock().isoformat()
        return result
    manifest = Manifest(
        feed=spec.name,
        run_id=run.run_id,
        created_at=now.isoformat(),
        buckets=meta.buckets,
        source=run.source,
        complete=differ.complete,
        counts=dict(counts),
        parts=[PartInfo(bucket=b, **ref.to_dict()) for b, ref in sorted(differ.parts.items())],
    )
    mkey = manifest_key(spec.name, run.run_id)
    if issues:
        deps.blobs.put_bytes(
            f"runs/{spec.name}/{run.run_id}/issues.jsonl",
            b"".join(orjson.dumps(i.to_dict()) + b"\n" for i in issues),
        )
    deps.blobs.put_bytes(mkey, manifest.model_dump_json(indent=1).encode())
    if fr.c.found is not None:
        meta.fingerprints = publish_fingerprints(
            deps.blobs, spec.name, run.run_id, fr.c.found, fr.c.digest, fr.encoding
        )
    previous_manifest = meta.latest_manifest
    meta.latest_manifest = mkey
    meta.last_run_id = run.run_id
    apply_mark(meta, mark, deps.clock())  # only now: the whole diff of the run is done
    deps.state.write_meta(meta)  # under the lease, read under it: nothing is lost
    pending = {b: differ.pending.get(b, 0) for b in differ.to_export}
    result.messages = pack_messages(
        spec.name, run.run_id, mkey, pending, deps.message_items, _split_keys(deps, spec.name)
    )
    deps.queue.send(result.messages)
    live = {key for ref in differ.parts.values() for key in ref.objects()}
    run.counts["parts_pruned"] = _prune_parts(deps, spec.name, live, previous_manifest)
    run.manifest = mkey
    run.parts_enqueued = export_units(result.messages)  # one part result per bucket or slice
    run.messages_enqueued = len(result.messages)
    run.status = "held" if differ.held else "completed"
    run.finished_at = deps.clock().isoformat()
    deps.state.put_run(run)
    return result


def _split_keys(deps: ReindexDeps, feed: str) -> SplitKeys:
    """Where to cut a bucket that does not fit a message: the keys of its pending
    items at the positions, in key order, as the state has them now (a bucket is read
    again only when it is cut: a few per run)."""

    def keys(bucket: int, positions: list[int]) -> list[str]:
        pending = sorted(deps.state.read_buckets(feed, [bucket])[0].pending())
        return [pending[i] for i in positions if i < len(pending)]

    return keys


def continue_run(message: ContinuationMessage, deps: ReindexDeps) -> list[ReindexResult]:
    """A follow-up invocation of a run: take its leases again (same run id), go on
    from its checkpoint. A message of a run that has moved on (a duplicate, an older
    checkpoint, a finished or failed run) is dropped; a run whose lease another run
    took meanwhile is failed. A crash leaves the run running, and its lease held
    past the message's redelivery (`lease.handed_on_ttl`), for the retry."""
    runs = [deps.state.get_run(feed, message.run_id) for feed in message.feeds]
    going = [r for r in runs if r is not None and r.status == "running"]
    if not going or any(r.continuations != message.sequence for r in going):
        log.warning(
            "continuation %d of run %s dropped: the run has moved on",
            message.sequence,
            message.run_id,
        )
        return []
    logger.append_keys(run_id=message.run_id, feed=",".join(message.feeds))
    try:
        return _continue_leased(message, [r for r in runs if r is not None], deps)
    finally:
        logger.remove_keys(["run_id", "feed"])


def _continue_leased(
    message: ContinuationMessage, runs: list[RunRecord], deps: ReindexDeps
) -> list[ReindexResult]:
    now = deps.clock()
    ttl = handed_on_ttl(deps.lease_seconds, deps.continue_visibility_seconds)  # a retry's too
    leased: list[str] = []
    handed_on = False
    try:
        try:
            for feed in message.feeds:
                deps.state.acquire_lease(feed, message.run_id, now, ttl)
                leased.append(feed)
        except LeaseHeldError as exc:
            return _lost_lease(message, runs, deps, f"{exc}")
        if later := newer_run(deps.state, runs):
            return _lost_lease(message, runs, deps, later)
        carry = load_carry(deps.blobs, message.carry_key)
        with tempfile.TemporaryDirectory(prefix="reindex-", dir=deps.workdir) as tmp:
            feed_runs = carried_runs(carry, runs, deps, Path(tmp))
            rs = resumed_state(carry, Budget(deps.clock, deps.budget_seconds), Path(tmp))
            try:
                results, handed_on = _resume(feed_runs, rs, deps, carry)
            except Exception as exc:  # SQS delivers the message again
                for fr in feed_runs:
                    if not fr.finished:
                        fr.run.error = (
                            f"{type(exc).__name__}: {exc} (continuation {carry.sequence}, retried)"
                        )
                        deps.state.put_run(fr.run)
                leased.clear()  # keep the leases for the retry
                raise
        return results
    finally:
        if not handed_on:
            for name in leased:
                deps.state.release_lease(name, message.run_id)


def _resume(
    feed_runs: list[FeedRun], rs: RunState, deps: ReindexDeps, carry: Carry
) -> tuple[list[ReindexResult], bool]:
    """A follow-up invocation's work: the read where it stopped (if it goes on), then
    the diff; also whether it handed the run on again."""
    if carry.read is not None:
        deps = dataclasses.replace(deps, source=_reopened(carry, deps))
        paused = read_source(feed_runs, rs, deps, carry.read)
        rs.budget.progress()
        if paused is not None:
            return hand_on(feed_runs, rs, deps, read=paused), True
        restage(feed_runs, rs, deps)
    return _go_on(feed_runs, rs, deps)


def _reopened(carry: Carry, deps: ReindexDeps) -> CatalogSource:
    """The source of a read that goes on: the one its first invocation read (the
    carry has its description, `kind:uri`), opened again for a full read."""
    uri = (carry.source or "").partition(":")[2]
    if deps.open_source is None or not uri:
        raise ConfigError(f"continuation of run {carry.run_id}: cannot open its source again")
    return deps.open_source(uri)


def _lost_lease(
    message: ContinuationMessage, runs: list[RunRecord], deps: ReindexDeps, holder: str
) -> list[ReindexResult]:
    """Another run took the lease after it expired: this run ends, failed (it must not
    write under another run's lease; the next run redoes what it did not finish)."""
    for run in runs:
        if run.status == "running":
            run.status = "failed"
            run.error = f"the run lost its lease before continuation {message.sequence}: {holder}"
            run.finished_at = deps.clock().isoformat()
            deps.state.put_run(run)
    return [ReindexResult(run=r) for r in runs]


def _prune_parts(deps: ReindexDeps, feed: str, live: set[str], previous: str | None) -> int:
    """Delete the feed's snapshot parts that nothing can read any more: not a bucket's
    current part, and not in the previous run's manifest (an export that read the
    state just before this run's writes may still open one of those). Runs under the
    feed's lease, so no other reindex writes parts meanwhile. Best effort: a failure
    is logged, the run is not failed for it, the next run tries again."""
    try:
        keep = set(live)
        if previous:
            try:
                prior = Manifest.model_validate_json(deps.blobs.get_bytes(previous))
            except NotFoundError:
                return 0  # cannot tell what a running export may read: keep everything
            keep.update(key for p in prior.parts for key in p.objects())
        prefix = f"snapshots/{feed}/"
        garbage = [
            k for k in deps.blobs.list_keys(prefix) if k.endswith(".jsonl.gz") and k not in keep
        ]
        if garbage:
            deps.blobs.delete_keys(garbage)
        return len(garbage)
    except Exception:  # storage hiccup: parts stay until the next run
        log.warning("could not prune old snapshot parts of %s", feed, exc_info=True)
        return 0
