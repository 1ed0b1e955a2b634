"""The reindex use-case: source → feed items → hash → diff with the state →
snapshot parts + state + export messages.

Order of writes, per bucket, so that a crash anywhere loses nothing:
1. the bucket's new snapshot part (an immutable object; an orphan is harmless),
2. the bucket's state together with the pointer to that part (one conditional write),
then, after all buckets, the manifest, the feed meta and the export messages. A crash
before the messages leaves items `pending` in the state; the next run queues every
bucket that has items to send, so it converges.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from catalog_sync.errors import ConflictError, NotFoundError
from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import AcoContext, BuildContext, FeedSpec
from catalog_sync.infra.spill import BucketSpill
from catalog_sync.infra.workers import compile_partitions
from catalog_sync.ports import BlobStore, CatalogSource, Clock, ExportQueue, FeedState
from catalog_sync.records import ReadReport, SourceIssue
from catalog_sync.sync.canonical import EncodedItem, encode
from catalog_sync.sync.compile import Collector, compile_record
from catalog_sync.sync.runs import DEFAULT_BUCKETS, FeedMeta, RunKind, RunRecord
from catalog_sync.sync.snapshot import (
    ExportMessage,
    Manifest,
    PartInfo,
    PartWriter,
    manifest_key,
    part_key,
    read_part,
)
from catalog_sync.sync.state import ItemState, PartRef, StateBucket, Status

log = logging.getLogger(__name__)

MAX_ISSUES_IN_RUN = 100
PREVIEW = 20
STATE_READ_CHUNK = 4  # buckets per state read (decoded state of a large bucket is MBs)
CHECKPOINT_EVERY = 16  # buckets between checkpoints of a run
CONFLICT_TRIES = 8

Progress = Callable[[str, int, int | None], None]  # (stage, done, total)


@dataclass(frozen=True)
class ReindexRequest:
    feeds: tuple[str, ...]  # reindexed together, from one read of the source
    kind: RunKind = "sync"
    force: bool = False  # resync: queue every item, changed or not
    no_reindex: bool = False  # resend the compiled feed without reading the source
    by_ids: frozenset[str] | None = None  # only these groups (SKUs), lower-cased
    dry_run: bool = False
    # Resend what waits (items whose export ran out of retries, items queued by a run
    # whose messages never went out) without reading the source.
    resend_only: bool = False
    # Rebuild the state from scratch: forget everything but what the SaaS side still
    # holds (so items gone from the catalog are still sent as deletions).
    cleanup: bool = False
    # Continue an interrupted resync (`resumed_from`): buckets below `resume_from` were
    # done by it.
    resume_from: int = 0
    resumed_from: str | None = None

    @property
    def reads_source(self) -> bool:
        return not (self.no_reindex or self.resend_only)


@dataclass
class ReindexDeps:
    state: FeedState
    blobs: BlobStore
    queue: ExportQueue
    clock: Clock
    new_id: Callable[[], str]
    source: CatalogSource | None = None
    store_views: tuple[tuple[str, str], ...] = (("default", "base"),)
    enabled_feeds: frozenset[str] | None = None  # the feeds the catalog is synced to (builders
    # adapt: products carry no price where the prices feed exists); default: the run's feeds
    buckets: int = DEFAULT_BUCKETS  # for a feed's first run
    lease_seconds: int = 900
    stale_pending_seconds: int = 1800  # a pending item queued longer ago than this is stuck
    workdir: Path | None = None
    progress: Progress | None = None
    workers: int = 1  # processes that compile a partitioned read (1: this one)
    aco: AcoContext | None = None  # the ACO target's build options


@dataclass
class ReindexResult:
    run: RunRecord
    messages: list[ExportMessage] = field(default_factory=list)
    preview: dict[str, list[str]] = field(default_factory=dict)  # dry run: keys by change kind


def _run_id_of(now: datetime) -> str:
    """The time part of a run id: run ids sort by time."""
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z"


def new_run_id(now: datetime, new_id: Callable[[], str]) -> str:
    return f"{_run_id_of(now)}-{new_id()[:8]}"


@dataclass
class _FeedRun:
    """One feed's part of a reindex: its run record, what the read collected, its diff."""

    spec: FeedSpec
    meta: FeedMeta
    run: RunRecord
    collector: Collector | None = None

    @property
    def c(self) -> Collector:
        assert self.collector is not None
        return self.collector


def reindex_feed(request: ReindexRequest, deps: ReindexDeps) -> list[ReindexResult]:
    """Reindex the requested feeds from one read of the source; one run (record,
    lease, snapshot, messages) per feed."""
    specs = [get_feed(name) for name in request.feeds]
    now = deps.clock()
    run_id = new_run_id(now, deps.new_id)
    source_name = deps.source.describe() if request.reads_source and deps.source else None

    def feed_runs_now() -> list[_FeedRun]:
        # The meta (latest manifest, bucket count) is read under the lease: read
        # earlier, a run finishing meanwhile would make it stale.
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
            out.append(_FeedRun(spec, meta, run))
        return out

    if request.dry_run:
        return _run(feed_runs_now(), request, deps, now)
    leased: list[str] = []
    try:
        for spec in specs:
            deps.state.acquire_lease(spec.name, run_id, now, deps.lease_seconds)
            leased.append(spec.name)
        feed_runs = feed_runs_now()
        for fr in feed_runs:
            deps.state.put_run(fr.run)
        try:
            return _run(feed_runs, request, deps, now)
        except Exception as exc:
            for fr in feed_runs:
                if fr.run.status == "running":
                    fr.run.status = "failed"
                    fr.run.error = f"{type(exc).__name__}: {exc}"
                    fr.run.finished_at = deps.clock().isoformat()
                    deps.state.put_run(fr.run)
            raise
    finally:
        for name in leased:
            deps.state.release_lease(name, run_id)


def _run(
    feed_runs: list[_FeedRun], request: ReindexRequest, deps: ReindexDeps, now: datetime
) -> list[ReindexResult]:
    results = []
    with tempfile.TemporaryDirectory(prefix="reindex-", dir=deps.workdir) as tmp:
        workdir = Path(tmp)
        for fr in feed_runs:
            feed_dir = workdir / fr.spec.name
            feed_dir.mkdir()
            fr.collector = Collector(fr.spec, BucketSpill(feed_dir, fr.meta.buckets))
        report = ReadReport(complete=True)
        if request.reads_source:
            if deps.source is None:
                raise NotFoundError("no catalog source configured (set CATALOG_SOURCE)")
            report = _read_source(feed_runs, request, deps, now)
        for fr in feed_runs:
            fr.c.spill.finish()
            # An aggregate item (a category, an attribute) may have been referenced only
            # by a rejected record: no deletions for such a feed then.
            complete = report.complete and not (fr.spec.aggregate and fr.c.rejected)
            differ = _Differ(fr.spec, request, deps, fr.run.run_id, now, complete=complete)
            _diff_buckets(differ, fr, deps, workdir / fr.spec.name)
            results.append(_finish(fr, differ, report, request, deps, now))
    return results


def _finish(
    fr: _FeedRun,
    differ: _Differ,
    report: ReadReport,
    request: ReindexRequest,
    deps: ReindexDeps,
    now: datetime,
) -> ReindexResult:
    spec, run, meta, issues = fr.spec, fr.run, fr.meta, fr.c.issues
    counts = differ.counts
    counts["items_read"] = fr.c.spill.items
    counts["records"] = report.records
    counts["rows"] = report.rows
    counts["rejected"] = fr.c.rejected
    run.complete = differ.complete
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
    previous_manifest = meta.latest_manifest
    meta.latest_manifest = mkey
    meta.last_run_id = run.run_id
    deps.state.write_meta(meta)
    result.messages = [
        ExportMessage(
            feed=spec.name,
            run_id=run.run_id,
            bucket=b,
            part_key=differ.parts[b].key if b in differ.parts else None,
            manifest_key=mkey,
        )
        for b in sorted(differ.to_export)
    ]
    deps.queue.send(result.messages)
    live = {ref.key for ref in differ.parts.values() if ref.key}
    run.counts["parts_pruned"] = _prune_parts(deps, spec.name, live, previous_manifest)
    run.manifest = mkey
    run.parts_enqueued = len(result.messages)
    run.status = "completed"
    run.finished_at = deps.clock().isoformat()
    deps.state.put_run(run)
    return result


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
            keep.update(p.key for p in prior.parts if p.key)
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


def _read_source(
    feed_runs: list[_FeedRun], request: ReindexRequest, deps: ReindexDeps, now: datetime
) -> ReadReport:
    source = deps.source
    assert source is not None
    enabled = deps.enabled_feeds or frozenset(fr.spec.name for fr in feed_runs)
    ctx = BuildContext(now=now, store_views=deps.store_views, feeds=enabled, aco=deps.aco)
    # An aggregate item (a category, an attribute's options) is the union over every
    # product: a partial read (incremental, by ids) cannot rebuild it, so such feeds
    # leave it alone until the next full read.
    partial = request.by_ids is not None or bool(getattr(source, "incremental", False))
    building = [fr.c for fr in feed_runs if not (partial and fr.spec.aggregate)]
    n = 0

    def advance(k: int) -> None:
        nonlocal n
        before, n = n, n + k
        if deps.progress and n // 10_000 != before // 10_000:
            deps.progress("read", n, None)

    split = getattr(source, "split", None)
    if split is None:  # a source read as one stream (the REST API)
        for entry in source.read(skus=request.by_ids):
            if compile_record(entry, building, ctx):
                advance(1)
    else:
        with split(skus=request.by_ids) as parts:
            for entry in parts.rejected:
                compile_record(entry, building, ctx)
            workers = min(deps.workers, len(parts.partitions))
            if workers > 1 and building:
                n = compile_partitions(
                    parts.partitions,
                    building,
                    ctx,
                    workers,
                    merge=parts.merge,
                    progress=advance,
                )
            else:
                for part in parts.partitions:
                    for entry in part.records(parts.warn):
                        if compile_record(entry, building, ctx):
                            advance(1)
                    parts.merge(part.built)
    report = source.report()
    configured = {code for code, _ in deps.store_views}
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
    if deps.progress:
        deps.progress("read", n, n)
    return report


def _by_line(issue: SourceIssue) -> tuple[bool, int]:
    return issue.line is None, issue.line or 0


class _Differ:
    """Diffs one bucket's compiled items against its state (a pure function of the
    inputs, so a lost conditional write is simply re-applied to the fresh state)."""

    def __init__(
        self,
        spec: FeedSpec,
        request: ReindexRequest,
        deps: ReindexDeps,
        run_id: str,
        now: datetime,
        *,
        complete: bool,
    ) -> None:
        self.spec = spec
        self.request = request
        self.run_id = run_id
        self.now = now
        self.now_iso = now.isoformat()
        self.complete = complete
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "new",
                "changed",
                "deleted",
                "unchanged",
                "requeued",
                "kept",
                "deletions_withheld",
                "parts_written",
                "parts_reused",
                "duplicates",
                "stuck",
                "pruned",
            ),
            0,
        )
        self.preview: dict[str, list[str]] = {"new": [], "changed": [], "deleted": []}
        self.stale_before = _run_id_of(now - timedelta(seconds=deps.stale_pending_seconds))
        self.parts: dict[int, PartRef] = {}
        self.to_export: set[int] = set()

    def _note(self, kind: str, key: str, counts: dict[str, int]) -> None:
        counts[kind] += 1
        if self.request.dry_run and kind in self.preview and len(self.preview[kind]) < PREVIEW:
            self.preview[kind].append(key.replace("\x1f", " / "))

    def _queue(self, rec: ItemState) -> None:
        rec.status = Status.PENDING
        rec.reason = None
        rec.attempts = 0
        rec.run_id = self.run_id

    def apply(
        self, bucket: StateBucket, items: dict[str, EncodedItem], keep: set[str]
    ) -> tuple[dict[str, int], bool]:
        """Apply the diff to `bucket.records`; return its counts and whether the
        bucket's live content changed (so its snapshot part must be rewritten)."""
        counts = dict.fromkeys(self.counts, 0)
        records = bucket.records
        request = self.request
        if request.no_reindex:  # nothing was read: resend what is compiled
            for rec in records.values():
                if not rec.deleted or rec.held_by_saas:
                    self._queue(rec)
                    counts["requeued"] += 1
            return counts, False
        if request.resend_only:
            for rec in records.values():
                if rec.status is Status.RETRY:
                    self._queue(rec)
                    counts["requeued"] += 1
                elif rec.status is Status.PENDING and rec.run_id < self.stale_before:
                    counts["stuck"] += 1  # its message never came: queue its bucket again
            return counts, False
        if request.cleanup:
            for key in [k for k, r in records.items() if not r.held_by_saas]:
                del records[key]
                counts["pruned"] += 1
            for rec in records.values():
                rec.hash = ""  # unknown: whatever the catalog has now is sent
        content_changed = counts["pruned"] > 0
        force = request.force and bucket.bucket >= request.resume_from
        for key, item in items.items():
            found = records.get(key)
            if found is None:
                records[key] = ItemState(
                    item.hash, Status.PENDING, changed_at=self.now_iso, run_id=self.run_id
                )
                self._note("new", key, counts)
                content_changed = True
                continue
            rec = found
            if rec.hash != item.hash or rec.deleted:
                rec.hash = item.hash
                rec.deleted = False
                rec.changed_at = self.now_iso
                self._queue(rec)
                self._note("changed", key, counts)
                content_changed = True
            elif force or rec.status is Status.RETRY:
                self._queue(rec)
                counts["requeued"] += 1
            else:
                counts["unchanged"] += 1
        by_ids = self.request.by_ids
        for key, rec in records.items():
            if key in items:
                continue
            group = self.spec.group_of_key(key).lower()
            if by_ids is not None and group not in by_ids:
                continue  # outside this run's scope
            if group in keep:
                if not rec.deleted:
                    counts["kept"] += 1
                continue
            if rec.deleted:
                if force and rec.held_by_saas:
                    self._queue(rec)
                    counts["requeued"] += 1
                continue
            if not self.complete:
                counts["deletions_withheld"] += 1
                continue
            rec.deleted = True
            rec.hash = encode(self.spec, self.spec.tombstone(key, self.now)).hash
            rec.changed_at = self.now_iso
            self._queue(rec)
            self._note("deleted", key, counts)
            content_changed = True
        return counts, content_changed


def _diff_buckets(differ: _Differ, fr: _FeedRun, deps: ReindexDeps, workdir: Path) -> None:
    feed = differ.spec.name
    spill = fr.c.spill
    total = fr.meta.buckets
    for start in range(0, total, STATE_READ_CHUNK):
        numbers = list(range(start, min(start + STATE_READ_CHUNK, total)))
        for bucket in deps.state.read_buckets(feed, numbers):
            if differ.request.reads_source:
                items, keep, duplicates = spill.read(bucket.bucket)
                differ.counts["duplicates"] += len(duplicates)
            else:
                items, keep = {}, set()
            _diff_one(differ, deps, bucket, items, keep, workdir)
        done = numbers[-1] + 1
        if not differ.request.dry_run and (done % CHECKPOINT_EVERY == 0 or done == total):
            fr.run.buckets_done = done  # the checkpoint `--continue-resync` resumes from
            fr.run.counts = dict(differ.counts)
            deps.state.put_run(fr.run)
        if deps.progress:
            deps.progress("diff", done, total)


def _diff_one(
    differ: _Differ,
    deps: ReindexDeps,
    bucket: StateBucket,
    items: dict[str, EncodedItem],
    keep: set[str],
    workdir: Path,
) -> None:
    new_part: PartRef | None = None  # the content does not depend on the attempt
    for attempt in range(CONFLICT_TRIES):
        counts, content_changed = differ.apply(bucket, items, keep)
        if differ.request.dry_run:
            break
        if content_changed:
            if new_part is None:
                new_part = _write_part(differ, deps, bucket, items, workdir)
            bucket.part = new_part
        if not bucket.records and bucket.version == 0:
            break  # an empty bucket that never existed: nothing to store
        if not (content_changed or counts["requeued"]):
            break  # nothing changed: no write
        try:
            deps.state.write_bucket(bucket)
            break
        except ConflictError:
            log.info("bucket %s/%d changed under us; re-applying", bucket.feed, bucket.bucket)
            if attempt == CONFLICT_TRIES - 1:
                raise
            bucket = deps.state.read_buckets(bucket.feed, [bucket.bucket])[0]
    for k, v in counts.items():
        differ.counts[k] += v
    if bucket.part is not None:
        differ.parts[bucket.bucket] = bucket.part
        if content_changed:
            differ.counts["parts_written"] += 1
        else:
            differ.counts["parts_reused"] += 1
    if differ.request.resend_only:
        if counts["requeued"] or counts["stuck"]:
            differ.to_export.add(bucket.bucket)
    elif any(r.needs_send for r in bucket.records.values()):
        differ.to_export.add(bucket.bucket)


def _write_part(
    differ: _Differ,
    deps: ReindexDeps,
    bucket: StateBucket,
    items: dict[str, EncodedItem],
    workdir: Path,
) -> PartRef:
    """Write the bucket's live content: this run's items plus, from the previous
    part, the live items this run did not read (rejected records, partial reads)."""
    feed = differ.spec.name
    path = workdir / f"part-{bucket.bucket:04d}.jsonl.gz"
    writer = PartWriter(path)
    for item in items.values():
        writer.write(item)
    for item in _carried_over(deps, bucket, items):
        writer.write(item)
    size, sha = writer.close()
    key = part_key(feed, differ.run_id, bucket.bucket)
    if writer.items == 0:
        path.unlink()
        return PartRef(key="", items=0, bytes=0, sha256="", run_id=differ.run_id)
    deps.blobs.put_file(key, path)
    path.unlink()
    return PartRef(key=key, items=writer.items, bytes=size, sha256=sha, run_id=differ.run_id)


def _carried_over(
    deps: ReindexDeps, bucket: StateBucket, items: dict[str, EncodedItem]
) -> Iterator[EncodedItem]:
    prev = bucket.part
    if prev is None or not prev.key:
        return
    records = bucket.records
    if all(rec.deleted or key in items for key, rec in records.items()):
        return  # this run read every live item: nothing to carry over
    with deps.blobs.open(prev.key) as stream:
        for key, h, body in read_part(stream):
            if key in items:
                continue
            rec = records.get(key)
            if rec is not None and not rec.deleted and rec.hash == h:
                yield EncodedItem(key=key, group="", hash=h, body=body)
