"""Handing a run on to a follow-up invocation, and taking it up again there (the
data formats are in `continuation`; the orchestration in `reindex`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson

from catalog_sync.errors import ConfigError, NotFoundError
from catalog_sync.feeds.registry import get_feed
from catalog_sync.infra.spill import BucketSpill
from catalog_sync.observability import get_logger
from catalog_sync.records import ReadReport, SourceIssue
from catalog_sync.sync import fingerprints
from catalog_sync.sync.compile import Collector
from catalog_sync.sync.continuation import (
    Budget,
    Carry,
    FeedCarry,
    ReadCarry,
    StagedSpill,
    run_prefix,
    save_carry,
    stage_spill,
)
from catalog_sync.sync.fingerprints import FingerprintSet
from catalog_sync.sync.lease import handed_on_ttl
from catalog_sync.sync.requests import ReindexRequest
from catalog_sync.sync.runs import ContinuationMessage, FeedMeta, RunRecord
from catalog_sync.sync.runstate import FeedRun, ReindexDeps, ReindexResult, RunState
from catalog_sync.sync.watermark import ReadMark
from catalog_sync.sync.windows import WindowTracker

log = get_logger(__name__)


def hand_on(
    feed_runs: list[FeedRun], rs: RunState, deps: ReindexDeps, read: ReadCarry | None = None
) -> list[ReindexResult]:
    """The budget is spent: checkpoint the run (stage what was compiled and not yet
    diffed, write the carry), renew its leases, and queue its continuation. `read`:
    the read itself goes on (where it stopped). Order: the message after the carry
    (it names it), the run records after the message (a duplicate of an older
    message is dropped by their sequence)."""
    assert deps.continuation is not None
    sequence = rs.sequence + 1
    staged = 0
    if read is not None:  # what this invocation compiled: one more staged segment
        read.segment = sequence
        staged = stage_segments(feed_runs, rs, deps, sequence)
    elif rs.request.reads_source and not rs.staged:
        # every bucket not consumed yet: those not diffed, and those a guarded
        # first pass deferred (its second pass reads them again)
        staged = stage_segments(feed_runs, rs, deps, 0)
    for fr in feed_runs:
        if not fr.finished:
            stage_gathered(fr, rs, deps, sequence, reading=read is not None)
    carry = Carry(
        run_id=rs.run_id,
        sequence=sequence,
        started_at=rs.now.isoformat(),
        mode=rs.request.mode,
        by_ids=sorted(rs.request.by_ids) if rs.request.by_ids is not None else None,
        resume_from=rs.request.resume_from,
        resumed_from=rs.request.resumed_from,
        confirm_deletions=rs.request.confirm_deletions,
        source=feed_runs[0].run.source,
        read_complete=rs.report.complete,
        read_rows=rs.report.rows,
        read_records=rs.report.records,
        mark=rs.mark.mark if rs.mark else None,
        mark_full=rs.mark.full if rs.mark else False,
        windows=(
            {sku: e.isoformat() if e else None for sku, e in rs.windows.seen.items()}
            if rs.windows is not None
            else None
        ),
        read=read,
        feeds=[feed_carry(fr) for fr in feed_runs],
    )
    key = save_carry(deps.blobs, carry)
    now = deps.clock()
    ttl = handed_on_ttl(deps.lease_seconds, deps.continue_visibility_seconds)
    for fr in feed_runs:  # renewed: the follow-up invocation (or its retry) starts under it
        deps.state.acquire_lease(fr.spec.name, rs.run_id, now, ttl)
    feeds = [fr.spec.name for fr in feed_runs]
    deps.continuation.send(
        ContinuationMessage(run_id=rs.run_id, feeds=feeds, sequence=sequence, carry_key=key)
    )
    for fr in feed_runs:
        if not fr.finished:
            fr.run.continuations = sequence
            deferred = fr.differ.deferred if fr.differ is not None else {}
            fr.run.buckets_done = min(fr.buckets_done, *deferred) if deferred else fr.buckets_done
            if fr.differ is not None:
                fr.run.counts = dict(fr.differ.counts)
            deps.state.put_run(fr.run)
    log.info(
        "run continues in a follow-up invocation",
        extra={"continuation": sequence, "staged_buckets": staged, "carry": key},
    )
    return [
        fr.result if fr.result is not None else ReindexResult(run=fr.run, continues=True)
        for fr in feed_runs
    ]


def feed_carry(fr: FeedRun) -> FeedCarry:
    """How far a feed got: its diff's state, or what it carried in untouched."""
    differ, carried = fr.differ, fr.carried
    if differ is not None:
        counts = dict(differ.counts)
        parts = {b: ref.to_dict() for b, ref in differ.parts.items()}
        to_export = sorted(differ.to_export)
        pending = dict(differ.pending)
        live, deferred = differ.live, dict(differ.deferred)
        second_pass, held = differ.second_pass, differ.held
    else:
        counts = dict(carried.counts) if carried else {}
        parts = dict(carried.parts) if carried else {}
        to_export = list(carried.to_export) if carried else []
        pending = dict(carried.pending) if carried else {}
        live, deferred = (carried.live, dict(carried.deferred)) if carried else (0, {})
        second_pass, held = (carried.second_pass, carried.held) if carried else (False, None)
    return FeedCarry(
        feed=fr.spec.name,
        buckets=fr.meta.buckets,
        buckets_done=fr.buckets_done,
        diffed=fr.diffed,
        finished=fr.finished,
        counts=counts,
        parts=parts,
        to_export=to_export,
        pending=pending,
        live=live,
        deferred=deferred,
        second_pass=second_pass,
        held=held,
        issues=[i.to_dict() for i in fr.c.issues] if not fr.finished else [],
        rejected=fr.c.rejected,
        unchanged_records=fr.c.unchanged_records,
        items_read=fr.items_before + fr.c.spill.items,
        staged=fr.segments,
        found_key=fr.found_key,
        prior_key=fr.prior_key,
        digest=fr.c.digest,
    )


def stage_segments(feed_runs: list[FeedRun], rs: RunState, deps: ReindexDeps, segment: int) -> int:
    """Stage every feed's local spill (not diffed yet) as `segment`; remember which
    buckets it holds. Returns the objects written."""
    staged = 0
    for fr in feed_runs:
        if fr.diffed:
            continue
        fr.c.spill.finish()
        buckets = stage_spill(
            deps.blobs, fr.c.spill, rs.run_id, fr.spec.name, 0, rs.workdir, segment
        )
        for bucket in buckets:
            fr.segments.setdefault(bucket, []).append(segment)
        staged += len(buckets)
    return staged


def stage_gathered(
    fr: FeedRun, rs: RunState, deps: ReindexDeps, sequence: int, *, reading: bool
) -> None:
    """What a feed's collector holds in memory and a later invocation needs: the
    record fingerprints found (published when the run completes; staged again only
    while the read adds to them) and, while the read goes on, the merged aggregate
    items."""
    c = fr.c
    if c.found is not None and (reading or fr.found_key is None):
        fr.found_key = gathered_key(rs.run_id, fr.spec.name, "found", sequence)
        deps.blobs.put_bytes(fr.found_key, c.found.to_bytes(c.digest))
    if reading and c.aggregate:
        deps.blobs.put_bytes(
            gathered_key(rs.run_id, fr.spec.name, "aggregate", sequence),
            orjson.dumps(list(c.aggregate.values())),  # datetimes as one invocation writes them
        )


def gathered_key(run_id: str, feed: str, what: str, sequence: int) -> str:
    return f"{run_prefix(run_id)}{feed}/{what}-{sequence:04d}.bin"


def carried_runs(
    carry: Carry, runs: list[RunRecord], deps: ReindexDeps, workdir: Path
) -> list[FeedRun]:
    """The feeds of a continued run as the carry left them; their compiled items are
    read from the staged objects (`StagedSpill`), or, while the read goes on, compiled
    into a new local spill; their meta anew under the lease."""
    by_feed = {r.feed: r for r in runs}
    out = []
    for fc in carry.feeds:
        run = by_feed.get(fc.feed)
        if run is None:
            raise ConfigError(f"continuation of run {carry.run_id}: no run record of {fc.feed}")
        spec = get_feed(fc.feed)
        meta = deps.state.read_meta(fc.feed) or FeedMeta(feed=fc.feed, buckets=fc.buckets)
        if meta.buckets != fc.buckets:
            raise ConfigError(
                f"continuation of run {carry.run_id}: feed {fc.feed} has {meta.buckets} "
                f"buckets, the run started with {fc.buckets}"
            )
        feed_dir = workdir / fc.feed
        feed_dir.mkdir()
        collector = Collector(
            spec,
            _spill_of(carry, fc, deps, feed_dir),
            issues=[SourceIssue(**i) for i in fc.issues],  # type: ignore[arg-type]
            rejected=fc.rejected,
            unchanged_records=fc.unchanged_records,
        )
        fr = FeedRun(spec, meta, run, collector, fc.buckets_done, fc.diffed, fc.finished)
        fr.carried = fc
        fr.segments = {b: list(s) for b, s in (fc.staged or {}).items()}
        fr.found_key, fr.prior_key = fc.found_key, fc.prior_key
        _gathered_back(fr, carry, deps)
        if fc.finished:
            fr.result = ReindexResult(run=run)
        out.append(fr)
    return out


def _spill_of(carry: Carry, fc: FeedCarry, deps: ReindexDeps, feed_dir: Path) -> BucketSpill:
    if carry.read is not None:  # the read goes on: this invocation spills anew
        return BucketSpill(feed_dir, fc.buckets)
    return StagedSpill(
        feed_dir, fc.buckets, deps.blobs, carry.run_id, fc.feed, fc.items_read, fc.staged
    )


def _gathered_back(fr: FeedRun, carry: Carry, deps: ReindexDeps) -> None:
    """The collector's fingerprints and (while the read goes on) aggregate items and
    the previous run's fingerprints, as the carry staged them."""
    fc, c = fr.carried, fr.c
    assert fc is not None
    c.digest = fc.digest
    if fc.found_key:
        known = fingerprints.decode(deps.blobs.get_bytes(fc.found_key), fc.digest)
        if known is None:
            raise ConfigError(f"continuation of run {carry.run_id}: {fc.found_key} unreadable")
        c.found = FingerprintSet()
        c.found.stable, c.found.timed = known.stable, dict(known.timed)
    if carry.read is None:
        return
    fr.items_before = fc.items_read
    c.prior = fingerprints.load(deps.blobs, fc.prior_key, fc.digest)
    key = gathered_key(carry.run_id, fc.feed, "aggregate", carry.sequence)
    try:
        for data in orjson.loads(deps.blobs.get_bytes(key)):
            c.merge_one(data)
    except NotFoundError:
        pass  # nothing gathered yet


def restage(feed_runs: list[FeedRun], rs: RunState, deps: ReindexDeps) -> None:
    """A read that went on is done: stage this invocation's part as one more segment
    and read every feed's items from the staged segments from now on."""
    segment = rs.sequence + 1
    stage_segments(feed_runs, rs, deps, segment)
    for fr in feed_runs:
        spill = fr.c.spill
        folder = spill.workdir / "staged"
        folder.mkdir()
        items = fr.items_before + spill.items
        fr.c.spill = StagedSpill(
            folder, spill.buckets, deps.blobs, rs.run_id, fr.spec.name, items, fr.segments
        )
        fr.items_before = 0
        fr.found_key = None  # this invocation found more: staged again at a hand-on
    rs.staged = True


def resumed_state(carry: Carry, budget: Budget, workdir: Path) -> RunState:
    """The run's shared state as the carry left it (the request rebuilt from it)."""
    request = ReindexRequest(
        feeds=tuple(f.feed for f in carry.feeds),
        mode=carry.mode,
        by_ids=frozenset(carry.by_ids) if carry.by_ids is not None else None,
        resume_from=carry.resume_from,
        resumed_from=carry.resumed_from,
        confirm_deletions=carry.confirm_deletions,
    )
    report = ReadReport(
        complete=carry.read_complete, rows=carry.read_rows, records=carry.read_records
    )
    mark = ReadMark(carry.mark, carry.mark_full) if carry.mark else None
    windows = None
    if carry.windows is not None:
        seen = {s: datetime.fromisoformat(e) if e else None for s, e in carry.windows.items()}
        windows = WindowTracker(carry.now, seen)
    return RunState(
        carry.run_id,
        carry.now,
        request,
        report,
        mark,
        budget,
        workdir,
        carry.sequence,
        carry.read is None,  # staged: the read is done (else it goes on, spilling locally)
        windows,
    )
