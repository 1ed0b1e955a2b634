"""The read step of a reindex (source → compiled, spilled items), and how it stops
and goes on in a follow-up invocation when the invocation's budget is spent.

Where a read can stop (`ReadCarry` says where it did):

- the export CSV (`MagentoCsvSource`): after pass 1 and after every partition of pass
  2 (with worker processes, a pool of them hands out no more partitions once the
  budget is spent; those handed out, the first ones, are built). Pass 1's
  partitions not built yet are staged once (`sources.magento_csv.staging`); the
  follow-up fetches each one just before it builds it. A file small enough for one
  in-memory partition is read in one invocation.
- the REST API (`ports.PagedSource`): at a page boundary of a full read, which goes
  on with `entity_id > <the last id read>`. Ids only grow and an edit keeps a
  product's id, so every product that exists all along is read exactly once; one
  created meanwhile is read if its id comes after the cursor (it always does); one
  deleted meanwhile is read or not. An incremental or by-SKU read is not ordered by
  id: it runs to its end in one invocation (it is small).

What the collectors gathered so far goes with the hand-on (`handon`): the compiled
spill (one staged segment per read invocation), issues, rejections, aggregate items,
the record fingerprints found so far and the previous run's; the source's report so
far; the price windows the read saw. A read that spanned invocations moves the
watermark at most to the run's start: a product edited after it was read, while the
read went on, has a later `updated_at`, so the next incremental read reads it again.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from catalog_sync.feeds.spec import BuildContext
from catalog_sync.infra.workers import compile_partitions
from catalog_sync.ports import (
    CatalogSource,
    IncrementalSource,
    PagedSource,
    PartitionedSource,
    SourceSplit,
    WindowedSource,
)
from catalog_sync.records import ReadReport, SourceIssue
from catalog_sync.sources.magento_csv import MagentoCsvSource
from catalog_sync.sources.magento_csv import staging as csv_staging
from catalog_sync.sync.compile import Collector, compile_record
from catalog_sync.sync.continuation import ReadCarry, run_prefix
from catalog_sync.sync.fingerprints import arm as arm_fingerprints
from catalog_sync.sync.fingerprints import skipper
from catalog_sync.sync.runstate import FeedRun, ReindexDeps, RunState
from catalog_sync.sync.watermark import ReadMark, read_mark
from catalog_sync.sync.windows import due

Skip = Callable[[int], float | None]


def source_prefix(run_id: str) -> str:
    """Where a run stages its source's partitions (the CSV's pass 1)."""
    return f"{run_prefix(run_id)}source/"


class _Counter:
    """Records compiled, for the progress callback (every 10,000)."""

    def __init__(self, deps: ReindexDeps) -> None:
        self.n = 0
        self.progress = deps.progress

    def advance(self, k: int) -> None:
        before, self.n = self.n, self.n + k
        if self.progress and self.n // 10_000 != before // 10_000:
            self.progress("read", self.n, None)


def read_source(
    feed_runs: list[FeedRun], rs: RunState, deps: ReindexDeps, resume: ReadCarry | None = None
) -> ReadCarry | None:
    """Read the source into the feeds' collectors, from where `resume` left it; set
    `rs.report` (the whole read's so far) and, once done, `rs.mark`. Returns where
    the read stopped when the budget ran out (None: it is done, and finished)."""
    source, request = deps.source, rs.request
    assert source is not None
    if (
        resume is None
        and isinstance(source, WindowedSource)
        and source.incremental
        and request.by_ids is None
    ):  # windows that opened or closed since the last run: no edit, no updated_at
        source.include(due(deps.blobs, [fr.spec.name for fr in feed_runs], rs.now))
    enabled = deps.enabled_feeds or frozenset(fr.spec.name for fr in feed_runs)
    ctx = BuildContext(now=rs.now, store_views=deps.store_views, feeds=enabled, aco=deps.aco)
    # An aggregate item (a category, an attribute's options) is the union over every
    # product: a partial read (incremental, by ids) cannot rebuild it, so such feeds
    # leave it alone until the next full read.
    partial = request.by_ids is not None or (
        isinstance(source, IncrementalSource) and source.incremental
    )
    building = [fr.c for fr in feed_runs if not (partial and fr.spec.aggregate)]
    counter = _Counter(deps)
    if isinstance(source, PartitionedSource):
        paused = _read_partitioned(
            source, feed_runs, building, ctx, rs, deps, resume, counter, partial
        )
    elif isinstance(source, PagedSource) and source.resumable(request.by_ids):
        paused = _read_paged(source, building, ctx, rs, resume, counter)
    else:  # read as one stream, to its end
        paused = None
        for entry in source.read(skus=request.by_ids):
            if rs.windows is not None:
                rs.windows.observe(entry)
            if k := compile_record(entry, building, ctx):
                counter.advance(k)
    rs.report = merged(resume, source.report()) if resume is not None else source.report()
    if paused is not None:
        return _paused(paused, rs.report, source, resume)
    rs.mark = read_mark(source) if resume is None else continued_mark(rs, source, resume)
    finish_read(feed_runs, rs.report, deps.store_views)
    if deps.progress:
        deps.progress("read", counter.n, counter.n)
    return None


def _read_paged(
    source: PagedSource,
    building: list[Collector],
    ctx: BuildContext,
    rs: RunState,
    resume: ReadCarry | None,
    counter: _Counter,
) -> ReadCarry | None:
    """A page at a time; stop after a page (not the last) once the budget is spent."""
    pages = source.pages(skus=rs.request.by_ids, after=resume.position if resume else None)
    with contextlib.closing(pages):
        for page in pages:
            for entry in page.entries:
                if rs.windows is not None:
                    rs.windows.observe(entry)
                if k := compile_record(entry, building, ctx):
                    counter.advance(k)
            rs.budget.progress()
            if not page.final and page.cursor is not None and rs.budget.spent():
                return ReadCarry(source="rest", position=page.cursor)
    return None


def _read_partitioned(
    source: PartitionedSource,
    feed_runs: list[FeedRun],
    building: list[Collector],
    ctx: BuildContext,
    rs: RunState,
    deps: ReindexDeps,
    resume: ReadCarry | None,
    counter: _Counter,
    partial: bool,
) -> ReadCarry | None:
    """Pass 1 (or the partitions an earlier invocation staged), then pass 2 as far
    as the budget goes; stage what is left when it runs out."""
    request, prefix = rs.request, source_prefix(rs.run_id)
    can_stop = isinstance(source, MagentoCsvSource)
    with contextlib.ExitStack() as stack:
        fetch: Callable[[Any, int], None] | None = None
        parts: SourceSplit
        if resume is None:
            parts = stack.enter_context(source.split(skus=request.by_ids))
            for entry in parts.rejected:
                compile_record(entry, building, ctx)
            skip = arm_fingerprints(
                building,
                [fr.meta.fingerprints for fr in feed_runs if any(fr.c is c for c in building)],
                ctx,
                None if partial else parts.fingerprint_context,
                use=not (request.force or request.cleanup),
                blobs=deps.blobs,
            )
            for fr in feed_runs:  # what a follow-up invocation loads again (handon)
                fr.prior_key = fr.meta.fingerprints if fr.c.prior is not None else None
            start = 0
            rs.budget.progress()  # pass 1 is done
            can_stop = can_stop and csv_staging.stageable(parts.partitions)
        else:
            assert isinstance(source, MagentoCsvSource)
            folder = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="csv-parts-", dir=rs.workdir)
            )
            parts = csv_staging.staged_split(
                source, resume.header, resume.stocks, _wanted(request.by_ids),
                resume.partitions, resume.warnings, Path(folder),
            )  # fmt: skip
            skip = _rearm(building, ctx) if resume.fingerprints else None
            start = resume.position

            def fetch(part: Any, index: int) -> None:
                csv_staging.fetch_partition(deps.blobs, prefix, part, index)

        stop = _build(parts, start, building, ctx, deps, rs, skip, counter, fetch, can_stop)
        if stop >= len(parts.partitions):
            return None
        assert isinstance(source, MagentoCsvSource)
        if resume is None:  # staged once; a later invocation builds from the staged ones
            csv_staging.stage_partitions(deps.blobs, prefix, parts.partitions, stop, rs.workdir)
        assert isinstance(parts, csv_staging.CsvSplit)
        header, stocks = csv_staging.layout(parts)
        return ReadCarry(
            source="csv", position=stop, partitions=len(parts.partitions), header=header,
            stocks=stocks, fingerprints=skip is not None, warnings=csv_staging.warnings_of(source),
        )  # fmt: skip


def _build(
    parts: SourceSplit,
    start: int,
    building: list[Collector],
    ctx: BuildContext,
    deps: ReindexDeps,
    rs: RunState,
    skip: Skip | None,
    counter: _Counter,
    fetch: Callable[[Any, int], None] | None,
    can_stop: bool,
) -> int:
    """Build partitions `start..`; return how far it got (all of them, or where the
    budget ran out after a partition). With worker processes, a pool for the whole
    invocation: it hands the partitions out in order and stops handing out once the
    budget is spent, so the ones built are still `start..` the returned index."""
    partitions = parts.partitions
    n = len(partitions)
    workers = min(deps.workers, n - start)
    bounded = can_stop and rs.budget.deadline is not None
    if bounded and start < n and rs.budget.spent():  # after pass 1
        return start
    if workers > 1 and building:

        def prepare(index: int) -> None:
            if fetch is not None:
                fetch(partitions[start + index], start + index)

        def stop() -> bool:  # after each partition built
            rs.budget.progress()
            return bounded and rs.budget.spent()

        done = compile_partitions(
            partitions[start:], building, ctx, workers, merge=parts.merge,
            progress=counter.advance, fingerprints=skip is not None, prepare=prepare, stop=stop,
        )  # fmt: skip
        for c in building:
            c.spill.seal(f"c{start}")  # the workers' segments, once per invocation
        return start + done
    for i in range(start, n):
        if bounded and i > start and rs.budget.spent():
            return i
        part = partitions[i]
        if fetch is not None:
            fetch(part, i)
        records = part.records(parts.warn, skip) if skip else part.records(parts.warn)
        for entry in records:
            if k := compile_record(entry, building, ctx):
                counter.advance(k)
        parts.merge(part.built)
        rs.budget.progress()
    return n


def _rearm(building: list[Collector], ctx: BuildContext) -> Skip:
    """The source's `skip` of a read that goes on: the collectors got the previous
    run's fingerprints back from the carry (as `fingerprints.arm` had set them)."""
    priors = [None if c.spec.aggregate else c.prior for c in building]
    skip: Skip = skipper(priors, ctx.now.timestamp())
    return skip


def _wanted(skus: frozenset[str] | None) -> frozenset[str] | None:
    return frozenset(s.strip().lower() for s in skus) if skus is not None else None


def _paused(
    paused: ReadCarry, report: ReadReport, source: CatalogSource, resume: ReadCarry | None
) -> ReadCarry:
    """Where the read stopped, with the report and watermark so far."""
    paused.complete = report.complete
    paused.rows, paused.records = report.rows, report.records
    paused.issues = [i.to_dict() for i in report.issues]
    paused.store_views = list(report.store_views)
    paused.high_water_mark = _high_water(source, resume)
    return paused


def _high_water(source: CatalogSource, resume: ReadCarry | None) -> str | None:
    marks = [resume.high_water_mark] if resume and resume.high_water_mark else []
    mark = getattr(source, "high_water_mark", None)
    if isinstance(mark, datetime):
        marks.append(mark.isoformat())
    return max(marks, key=datetime.fromisoformat) if marks else None


def merged(carried: ReadCarry, part: ReadReport) -> ReadReport:
    """The whole read's report: what earlier invocations read, then this one's part
    (an issue it repeats, such as a store view warning of the source's preparation,
    is listed once)."""
    issues = [SourceIssue(**i) for i in carried.issues]
    known = set(issues)
    issues.extend(i for i in part.issues if i not in known)
    return ReadReport(
        complete=carried.complete and part.complete,
        rows=carried.rows + part.rows,
        records=carried.records + part.records,
        issues=issues,
        store_views=list(dict.fromkeys([*carried.store_views, *part.store_views])),
    )


def continued_mark(rs: RunState, source: CatalogSource, resume: ReadCarry) -> ReadMark | None:
    """The watermark of a read that spanned invocations: its greatest `updated_at`,
    but never past the run's start (see the module docstring); none if a page failed."""
    if not isinstance(source, IncrementalSource):
        return None
    if any(i.severity == "error" and i.sku is None for i in rs.report.issues):
        return None
    high = _high_water(source, resume)
    if high is None:
        return None
    mark = min(datetime.fromisoformat(high), rs.now)
    return ReadMark(mark.isoformat(), rs.report.complete and not source.incremental)


def finish_read(
    feed_runs: list[FeedRun], report: ReadReport, store_views: tuple[tuple[str, str], ...]
) -> None:
    """After the read: each feed's issues in line order, then the source's own and the
    store views it ignored; aggregate feeds spill their merged items."""
    configured = {code for code, _ in store_views}
    extra = [
        SourceIssue(
            f"rows for store view {code!r} ignored: it is not in STORE_VIEWS "
            f"({', '.join(sorted(configured))})",
            field="store_view_code",
            severity="warning",
        )
        for code in report.store_views
        if code and code not in configured
    ]
    for fr in feed_runs:
        c = fr.c
        # by line: the same list however the read was split
        c.issues.sort(key=_by_line)
        c.issues.extend(report.issues)
        c.issues.extend(extra)
        if fr.spec.aggregate:
            c.spill_aggregate()


def _by_line(issue: SourceIssue) -> tuple[bool, int]:
    return issue.line is None, issue.line or 0
