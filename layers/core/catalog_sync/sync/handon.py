"""Handing a run on to a follow-up invocation, and taking it up again there (the
data formats are in `continuation`; the orchestration in `reindex`)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from catalog_sync.errors import ConfigError
from catalog_sync.feeds.registry import get_feed
from catalog_sync.observability import get_logger
from catalog_sync.records import ReadReport, SourceIssue
from catalog_sync.sync.compile import Collector
from catalog_sync.sync.continuation import (
    Budget,
    Carry,
    FeedCarry,
    StagedSpill,
    save_carry,
    stage_spill,
)
from catalog_sync.sync.lease import handed_on_ttl
from catalog_sync.sync.requests import ReindexRequest
from catalog_sync.sync.runs import ContinuationMessage, FeedMeta, RunRecord
from catalog_sync.sync.runstate import FeedRun, ReindexDeps, ReindexResult, RunState
from catalog_sync.sync.watermark import ReadMark
from catalog_sync.sync.windows import WindowTracker

log = get_logger(__name__)


def hand_on(feed_runs: list[FeedRun], rs: RunState, deps: ReindexDeps) -> list[ReindexResult]:
    """The budget is spent: checkpoint the run (stage what was compiled and not yet
    diffed, write the carry), renew its leases, and queue its continuation. Order: the
    message after the carry (it names it), the run records after the message (a
    duplicate of an older message is dropped by their sequence)."""
    assert deps.continuation is not None
    sequence = rs.sequence + 1
    staged = 0
    if rs.request.reads_source and not rs.staged:
        for fr in feed_runs:
            if not fr.diffed:
                # every bucket not consumed yet: those not diffed, and those a guarded
                # first pass deferred (its second pass reads them again)
                staged += stage_spill(
                    deps.blobs, fr.c.spill, rs.run_id, fr.spec.name, 0, rs.workdir
                )
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
        items_read=fr.c.spill.items,
    )


def carried_runs(
    carry: Carry, runs: list[RunRecord], deps: ReindexDeps, workdir: Path
) -> list[FeedRun]:
    """The feeds of a continued run as the carry left them; their compiled items are
    read from the staged objects (`StagedSpill`), their meta anew under the lease."""
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
        spill = StagedSpill(feed_dir, fc.buckets, deps.blobs, carry.run_id, fc.feed, fc.items_read)
        issues = [SourceIssue(**i) for i in fc.issues]  # type: ignore[arg-type]
        collector = Collector(
            spec, spill, issues=issues, rejected=fc.rejected, unchanged_records=fc.unchanged_records
        )
        fr = FeedRun(spec, meta, run, collector, fc.buckets_done, fc.diffed, fc.finished)
        fr.carried = fc
        if fc.finished:
            fr.result = ReindexResult(run=run)
        out.append(fr)
    return out


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
        True,
        windows,
    )
