"""The unchanged-source shortcut: a sync whose source is byte for byte what the
last complete run of its feeds read builds and diffs nothing.

Why it is never wrong: after a run that read the whole source cleanly, each feed's
state and snapshot parts are exactly what a build of those bytes gives; they stay
so until a run reads the source again (that run clears the seal under the lease
before it writes anything) or the clock reaches a record's next price window edge.
So the seal stored with such a run (`FeedMeta.source_seal`) says: these bytes (the
source's digest, `ports.DigestedSource`), in this build context (the feed's
`fingerprints.context_digest`: feed version, store views, enabled feeds, target
options), made this state, until `until`. A sync whose source digests to the same
seal, before `until`, after a completed run, needs no read.

A seal is stored only after a run that: read the whole source (not by ids, not
incremental, no REST source: it has no bytes to digest) to its end, met no warning
(a record built with one has no fingerprint, so its price window edge is unknown),
named the SKU of each record it rejected (their items are kept, not read: the
shortcut keeps them too, and reports the run's issues again), completed in one
invocation (a continued run stores none yet), was not held by the deletion guard,
and whose files kept their identity from the digest to the end of the read (so the
read saw the digested bytes; see `sources.magento_csv.digest`).

The shortcut is still a run: lease, run record (`source_unchanged`: the run whose
read it stands on), counts (live items unchanged, records not built), a manifest
over the same parts, the feed meta, and export messages. Like any sync it requeues
the items waiting for a retry and queues the buckets with items pending: the counts
kept beside each state bucket (`read_counts`) say which buckets have such items,
and only the ones with retries are read (and diffed as the full path diffs them).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from catalog_sync.errors import NotFoundError
from catalog_sync.feeds.spec import BuildContext, FeedSpec, bucket_of
from catalog_sync.observability import get_logger
from catalog_sync.ports import DigestedSource, SourceContent
from catalog_sync.records import ReadReport, SourceIssue
from catalog_sync.sync.diff import STATE_READ_CHUNK, Differ
from catalog_sync.sync.fingerprints import context_digest
from catalog_sync.sync.requests import ReindexRequest
from catalog_sync.sync.runstate import FeedRun, ReindexDeps, ReindexResult
from catalog_sync.sync.snapshot import Manifest
from catalog_sync.sync.state import BucketCounts, PartRef
from catalog_sync.sync.watermark import ReadMark, read_mark

log = get_logger(__name__)

SEAL_FORMAT = 1
SEAL_ISSUES = 100  # a run with more issues than this stores no seal (they are all re-reported)

Finish = Callable[
    [FeedRun, Differ, ReadReport, ReindexRequest, ReindexDeps, datetime, ReadMark | None],
    ReindexResult,
]


@runtime_checkable
class CountedState(Protocol):
    """A state that keeps status counts beside each bucket (`aws.dynamodb`)."""

    def read_counts(self, feed: str, buckets: Sequence[int]) -> dict[int, BucketCounts]: ...


@dataclass
class Seal:
    """What a completed run read, stored in its feed's meta."""

    digest: str  # the source's bytes in this feed's build context
    run_id: str  # the run that read them
    until: float | None  # epoch seconds of the first price window edge ahead (None: none)
    rows: int = 0
    records: int = 0
    duplicates: int = 0
    issues: list[dict[str, Any]] = field(default_factory=list)  # the read's, re-reported
    kept: list[str] = field(default_factory=list)  # groups (lower-cased) of rejected records
    format: int = SEAL_FORMAT

    @classmethod
    def of(cls, doc: dict[str, Any] | None) -> Seal | None:
        if not doc or doc.get("format") != SEAL_FORMAT:
            return None
        try:
            return cls(**doc)
        except TypeError:  # another layout: no shortcut, never a wrong one
            return None


def seal_digest(spec: FeedSpec, ctx: BuildContext, content: SourceContent) -> str:
    return context_digest(spec, ctx, f"bytes:{content.digest}")


class SourceProbe:
    """A run's look at its source's bytes, taken before the read."""

    def __init__(
        self,
        request: ReindexRequest,
        content: SourceContent | None = None,
        digests: dict[str, str] | None = None,
    ) -> None:
        self.request = request
        self.content = content
        self.digests = digests or {}
        self.matched: dict[str, tuple[Seal, Manifest]] | None = None

    @classmethod
    def take(
        cls, feed_runs: list[FeedRun], request: ReindexRequest, deps: ReindexDeps, now: datetime
    ) -> SourceProbe:
        """Digest the source when its read could seal or be skipped; clear the seals
        of a run that goes on to read (under the lease, before it writes)."""
        if not request.reads_source or request.dry_run or deps.source is None:
            return cls(request)
        content = None
        if request.by_ids is None and isinstance(deps.source, DigestedSource):
            content = deps.source.content()
        probe = cls(request, content)
        if content is not None:
            enabled = deps.enabled_feeds or frozenset(fr.spec.name for fr in feed_runs)
            ctx = BuildContext(now=now, store_views=deps.store_views, feeds=enabled, aco=deps.aco)
            probe.digests = {fr.spec.name: seal_digest(fr.spec, ctx, content) for fr in feed_runs}
            probe.matched = probe._match(feed_runs, deps, now)
        if probe.matched is None:
            for fr in feed_runs:
                if fr.meta.source_seal is not None:
                    fr.meta.source_seal = None
                    deps.state.write_meta(fr.meta)
        return probe

    def _match(
        self, feed_runs: list[FeedRun], deps: ReindexDeps, now: datetime
    ) -> dict[str, tuple[Seal, Manifest]] | None:
        """Each feed's seal and latest manifest when every feed's seal holds for
        these bytes now (None: read the source)."""
        if self.request.mode != "sync":
            return None  # a resync, a cleanup: everything is built and sent
        out: dict[str, tuple[Seal, Manifest]] = {}
        for fr in feed_runs:
            seal = Seal.of(fr.meta.source_seal)
            if seal is None or seal.digest != self.digests[fr.spec.name]:
                return None
            if seal.until is not None and now.timestamp() >= seal.until:
                return None  # a price window opened or closed since: build again
            if not _previous_completed(deps, fr):
                return None
            manifest = _manifest(deps, fr.meta.latest_manifest)
            if manifest is None:
                return None
            out[fr.spec.name] = (seal, manifest)
        return out

    def shortcut(
        self, feed_runs: list[FeedRun], deps: ReindexDeps, now: datetime, finish: Finish
    ) -> list[ReindexResult]:
        """The run without a read: each feed's waiting items requeued as a sync
        does, then finished as any run is (`finish`: `reindex._finish`)."""
        assert self.matched is not None
        results = []
        with tempfile.TemporaryDirectory(prefix="unchanged-", dir=deps.workdir) as tmp:
            for fr in feed_runs:
                results.append(self._shortcut_feed(fr, deps, now, finish, Path(tmp)))
        return results

    def _shortcut_feed(
        self, fr: FeedRun, deps: ReindexDeps, now: datetime, finish: Finish, workdir: Path
    ) -> ReindexResult:
        assert self.matched is not None
        seal, manifest = self.matched[fr.spec.name]
        if deps.progress:
            deps.progress("read", seal.records, seal.records)
        differ = _requeue_waiting(fr, seal, manifest, self.request, deps, now, workdir)
        if deps.progress:
            deps.progress("diff", fr.meta.buckets, fr.meta.buckets)
        report = ReadReport(complete=True, rows=seal.rows, records=seal.records)
        fr.c.issues = [SourceIssue(**issue) for issue in seal.issues]
        fr.c.unchanged_records = seal.records  # none built
        fr.c.rejected = len(seal.kept)  # rejected again, as the read would
        differ.counts["duplicates"] = seal.duplicates
        fr.run.source_unchanged = seal.run_id
        log.info(
            "%s: the source is unchanged since run %s: nothing read or built",
            fr.spec.name,
            seal.run_id,
        )
        return finish(fr, differ, report, self.request, deps, now, read_mark(deps.source))

    def seal(
        self, feed_runs: list[FeedRun], report: ReadReport, handed_on: bool, deps: ReindexDeps
    ) -> None:
        """After a run that read the source: store each feed's seal if the run may."""
        until = self._sealable(feed_runs, report, handed_on, deps)
        if until is False:
            return
        assert self.content is not None
        for fr in feed_runs:
            seal = Seal(
                digest=self.digests[fr.spec.name],
                run_id=fr.run.run_id,
                until=None if until == math.inf else float(until),
                rows=report.rows,
                records=report.records,
                duplicates=fr.run.counts.get("duplicates", 0),
                issues=list(fr.run.issues),
                kept=sorted(_kept(fr)),
            )
            fr.meta.source_seal = asdict(seal)
            deps.state.write_meta(fr.meta)  # still under the run's lease

    def _sealable(
        self, feed_runs: list[FeedRun], report: ReadReport, handed_on: bool, deps: ReindexDeps
    ) -> float | bool:
        """The first price window edge ahead of the run's records (inf: none), or
        False when the run may not seal (see the module's docstring)."""
        content = self.content
        if content is None or not content.settled or handed_on or not report.complete:
            return False
        if any(issue.severity == "warning" for issue in report.issues):
            return False  # a record built with a warning has no fingerprint: its edge is unknown
        until = math.inf
        fingerprinted = False
        for fr in feed_runs:
            run = fr.run
            if run.status != "completed" or not run.complete or run.held:
                return False
            if run.issues_total != len(run.issues) or run.issues_total > SEAL_ISSUES:
                return False
            if len(_kept(fr)) != fr.c.rejected:
                return False  # a rejection without its SKU (or naming others): kept unknown
            if fr.spec.aggregate:
                continue
            found = fr.c.found
            if found is None or len(found) + fr.c.rejected < report.records:
                return False
            fingerprinted = True
            until = min(until, min(found.timed.values(), default=math.inf))
        if not fingerprinted:
            return False
        assert isinstance(deps.source, DigestedSource)
        if deps.source.identity() != content.identity:
            log.info("the source changed during the read: no seal")
            return False
        return until


def _kept(fr: FeedRun) -> set[str]:
    """The groups whose records this feed rejected (their items keep their state):
    the SKUs the rejections' issues name."""
    return {issue.sku.lower() for issue in fr.c.issues if issue.sku}


def _previous_completed(deps: ReindexDeps, fr: FeedRun) -> bool:
    """The feed's run before this one completed (not failed, held or still running)."""
    for run in deps.state.list_runs(fr.spec.name, limit=2):
        if run.run_id != fr.run.run_id:
            return run.status == "completed"
    return False


def _manifest(deps: ReindexDeps, key: str | None) -> Manifest | None:
    if not key:
        return None
    try:
        return Manifest.model_validate_json(deps.blobs.get_bytes(key))
    except NotFoundError:
        return None


def _requeue_waiting(
    fr: FeedRun,
    seal: Seal,
    manifest: Manifest,
    request: ReindexRequest,
    deps: ReindexDeps,
    now: datetime,
    workdir: Path,
) -> Differ:
    """The diff of an unchanged read, bucket by bucket: a bucket with items waiting
    for a retry is read and diffed as the full path does (every live group read and
    unchanged); the others are counted from the counts kept beside them."""
    spec = fr.spec
    differ = Differ(
        spec, request, fr.run.run_id, now, state=deps.state, blobs=deps.blobs, complete=True,
        stale_pending_seconds=deps.stale_pending_seconds, guard=None,
    )  # fmt: skip
    numbers = list(range(fr.meta.buckets))
    known = (
        deps.state.read_counts(spec.name, numbers) if isinstance(deps.state, CountedState) else None
    )
    kept = set(seal.kept)
    if known is None:
        visit = numbers  # no counts: read every bucket
    else:
        with_kept = {bucket_of(group, fr.meta.buckets) for group in kept}
        visit = [
            b
            for b, c in sorted(known.items())
            if not c.counts or c.counts.get("retry", 0) or b in with_kept
        ]
    for start in range(0, len(visit), STATE_READ_CHUNK):
        for bucket in deps.state.read_buckets(spec.name, visit[start : start + STATE_READ_CHUNK]):
            groups = {spec.group_of_key(k).lower() for k in bucket.record_keys()}
            # as read: a rejected record's items kept, every other live group unchanged
            differ.diff_bucket(bucket, {}, groups & kept, workdir, groups - kept)
    visited = set(visit)
    _count_unread(differ, {b: c for b, c in (known or {}).items() if b not in visited}, manifest)
    return differ


def _count_unread(differ: Differ, known: dict[int, BucketCounts], manifest: Manifest) -> None:
    """Buckets without retries, not read: their live items count as read and unchanged
    (as the full path counts them), their pending items queue them, the latest
    manifest has their part."""
    parts = {p.bucket: p for p in manifest.parts}
    counts = differ.counts
    for number, c in sorted(known.items()):
        live = c.items - c.counts.get("deleted", 0)
        counts["unchanged"] += live
        counts["items_not_built"] += live
        waiting = c.counts.get("pending", 0) + c.counts.get("retry", 0)
        differ.pending[number] = waiting
        if waiting:
            differ.to_export.add(number)
        part = parts.get(number)
        if part is not None:
            differ.parts[number] = PartRef.from_dict(part.model_dump())
            counts["parts_reused"] += 1
