"""The diff step of a reindex: each bucket's compiled items against its state.

Per bucket, in this order (a crash anywhere loses nothing): the bucket's new
snapshot part (an immutable object; an orphan is harmless), then the bucket's
state together with the pointer to that part, in one conditional write. A lost
write is re-applied to the fresh state (the diff is a pure function of its inputs).

Deletions pass the mass-deletion guard (`guard.py`) first. Their total is only known
after the last bucket, so a guarded run diffs in two passes: the first applies and
writes every bucket without would-be deletions and only counts the deletions of the
others (nothing of those buckets is written); the second re-reads just those buckets
and diffs them again, with their deletions applied when the total is within the
guard's limits, or held (left live, counted) when it is not. Each bucket is written
once, under the same conflict rules.

The second pass usually finds what the first saw: the verdict allows the deletions and
nobody wrote the bucket meanwhile. So the first pass goes on with a deferred bucket as
far as the write: its new snapshot part is written (at the key the second pass would
write it to) and the bucket, deletions applied, is kept compressed (`_Ready`, up to
READY_BYTES). The second pass then only writes it, conditionally on the version it was
read at; a conflict, a held verdict, a dry run or a continuation (the kept buckets are
this invocation's) take the re-read path above. A held verdict deletes the parts the
first pass wrote for it before the re-read rewrites them.

Both passes may stop after a chunk and go on in another invocation (`reindex`,
`handon`): the first pass carries its tally (`live`, `deferred`); the verdict is taken
once, when the first pass ends, and carried (`second_pass`, `held`) with the deferred
buckets the second pass has not written yet, so a continued second pass neither
decides again (the guard's settings may change meanwhile) nor redoes a bucket.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from catalog_sync.errors import ConflictError
from catalog_sync.feeds.spec import KEY_SEPARATOR, FeedSpec
from catalog_sync.infra.spill import BucketSpill
from catalog_sync.observability import get_logger
from catalog_sync.ports import BlobStore, FeedState
from catalog_sync.sync.canonical import EncodedItem, encode
from catalog_sync.sync.guard import DeletionGuard, release_command
from catalog_sync.sync.requests import ReindexRequest
from catalog_sync.sync.snapshot import (
    PartWriter,
    delta_limit,
    part_key,
    read_bucket_items,
    removal,
)
from catalog_sync.sync.state import (
    ROW_DELETED,
    ROW_RUN_ID,
    ROW_STATUS,
    ItemState,
    PartRef,
    PreparedWrite,
    StateBucket,
    Status,
)

log = get_logger(__name__)

PREVIEW = 20
STATE_READ_CHUNK = 4  # buckets per state read (decoded state of a large bucket is MBs)
CONFLICT_TRIES = 8
# Deferred buckets kept, diffed and compressed, between the passes (see the module's
# docstring): about 40 MB for the 64 buckets of 500,000 items, all deferred.
READY_BYTES = 96 << 20
# Threads that write buckets (their snapshot part, then their state) while the diff goes
# on with the next ones, and the most writes in flight: each holds its bucket's items
# until it is done (a conflict diffs the bucket again).
WRITE_THREADS = 2
WRITES_IN_FLIGHT = 4
COUNTS = (
    "new",
    "changed",
    "deleted",
    "unchanged",
    "requeued",
    "kept",
    "deletions_withheld",
    "deletions_held",
    "parts_written",
    "parts_reused",
    "duplicates",
    "stuck",
    "pruned",
    "deltas_written",
    "items_not_built",  # items of records not built (their fingerprint was known)
)


def _group_getter(spec: FeedSpec) -> Callable[[str], str]:
    """The group of an identity key (a fast path for flat identities)."""
    if spec.flat_identity:
        at = spec.identity.index(spec.group_field)
        return lambda key: key.split(KEY_SEPARATOR)[at]
    return spec.group_of_key


_PENDING, _RETRY = Status.PENDING.value, Status.RETRY.value  # as stored in rows


def run_id_of(now: datetime) -> str:
    """The time part of a run id: run ids sort by time."""
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z"


class Differ:
    """Diffs one feed's buckets against their state and writes what changed."""

    def __init__(
        self,
        spec: FeedSpec,
        request: ReindexRequest,
        run_id: str,
        now: datetime,
        *,
        state: FeedState,
        blobs: BlobStore,
        complete: bool,
        stale_pending_seconds: int = 1800,
        guard: DeletionGuard | None = None,
    ) -> None:
        self.spec = spec
        self.request = request
        self.run_id = run_id
        self.now = now
        self.now_iso = now.isoformat()
        self.state = state
        self.blobs = blobs
        self.complete = complete
        self.counts: dict[str, int] = dict.fromkeys(COUNTS, 0)
        self.preview: dict[str, list[str]] = {"new": [], "changed": [], "deleted": []}
        self.stale_before = run_id_of(now - timedelta(seconds=stale_pending_seconds))
        self.parts: dict[int, PartRef] = {}
        self.to_export: set[int] = set()
        self.pending: dict[int, int] = {}  # bucket -> items to send (packs the messages)
        # The guard (None: deletions confirmed): only a complete read deletes anything.
        self.guard = guard if complete and request.reads_source else None
        self.live = 0  # live items in the state before this run (a guarded run counts them)
        self.deferred: dict[int, int] = {}  # bucket -> its would-be deletions (first pass)
        self.held: str | None = None  # why this run's deletions are held (None: not held)
        # the verdict is taken: the first pass is done, `deferred` holds the buckets the
        # second pass has still to write (a continuation resumes there)
        self.second_pass = False
        self._first_pass = False
        self.ready: dict[int, _Ready] = {}  # deferred buckets diffed as if allowed
        self._ready_bytes = 0
        self._writes: _Writes | None = None  # in `run`: bucket writes in threads
        self._uploads: list[tuple[str, Path]] | None = None  # parts to upload with them
        self._spill: BucketSpill | None = None  # the first pass's, in a guarded run

    def _note(self, kind: str, key: str, counts: dict[str, int]) -> None:
        counts[kind] += 1
        if self.request.dry_run and kind in self.preview and len(self.preview[kind]) < PREVIEW:
            self.preview[kind].append(key.replace("\x1f", " / "))

    def _queue(self, rec: ItemState) -> None:
        rec.status = Status.PENDING
        rec.reason = None
        rec.attempts = 0
        rec.run_id = self.run_id

    # --- the diff of one bucket (pure: records in, records and counts out) ---------

    def apply(
        self,
        bucket: StateBucket,
        items: dict[str, EncodedItem],
        keep: set[str],
        same: set[str] | None = None,
    ) -> tuple[dict[str, int], bool]:
        """Apply the diff to the bucket's records; return its counts and whether the
        bucket's live content changed (so its snapshot part must be rewritten).
        `same`: groups whose record was not built, its fingerprint being known: their
        live items count as read with the hash the state has (the part keeps their body).
        Only the records of `items` and those the diff changes become `ItemState`s (see
        `StateBucket`); the others are looked at as the rows they are stored as."""
        counts = dict.fromkeys(self.counts, 0)
        request = self.request
        if request.no_reindex:  # nothing was read: resend what is compiled
            self._requeue_compiled(bucket.records, counts)
            return counts, False
        if request.resend_only:
            self._requeue_waiting(bucket, counts)
            return counts, False
        if request.cleanup:
            self._forget(bucket.records, counts)
        force = request.force and bucket.bucket >= request.resume_from
        read_changed = self._apply_read(bucket, items, force, counts)
        absent = self._apply_not_built(bucket, items, same or set(), force, counts)
        absent_changed = self._apply_absent(bucket, absent, keep, force, counts)
        return counts, counts["pruned"] > 0 or read_changed or absent_changed

    def _requeue_compiled(self, records: dict[str, ItemState], counts: dict[str, int]) -> None:
        for rec in records.values():
            if not rec.deleted or rec.held_by_saas:
                self._queue(rec)
                counts["requeued"] += 1

    def _requeue_waiting(self, bucket: StateBucket, counts: dict[str, int]) -> None:
        retry = []
        for key, v in bucket.held():
            status, run_id = (
                (v[ROW_STATUS], v[ROW_RUN_ID]) if type(v) is list else (v.status, v.run_id)
            )
            if status == _RETRY:
                retry.append(key)
            elif status == _PENDING and run_id < self.stale_before:
                counts["stuck"] += 1  # its message never came: queue its bucket again
        for key in retry:
            rec = bucket.get(key)
            assert rec is not None
            self._queue(rec)
            counts["requeued"] += 1

    def _forget(self, records: dict[str, ItemState], counts: dict[str, int]) -> None:
        for key in [k for k, r in records.items() if not r.held_by_saas]:
            del records[key]
            counts["pruned"] += 1
        for rec in records.values():
            rec.hash = ""  # unknown: whatever the catalog has now is sent

    def _apply_read(
        self,
        bucket: StateBucket,
        items: dict[str, EncodedItem],
        force: bool,
        counts: dict[str, int],
    ) -> bool:
        """The items this run read: new, changed, requeued or unchanged."""
        changed = False
        for key, item in items.items():
            rec = bucket.get(key)
            if rec is None:
                bucket.add(
                    key,
                    ItemState(
                        item.hash, Status.PENDING, changed_at=self.now_iso, run_id=self.run_id
                    ),
                )
                self._note("new", key, counts)
                changed = True
            elif rec.hash != item.hash or rec.deleted:
                rec.hash = item.hash
                rec.deleted = False
                rec.changed_at = self.now_iso
                self._queue(rec)
                self._note("changed", key, counts)
                changed = True
            elif force or rec.status is Status.RETRY:
                self._queue(rec)
                counts["requeued"] += 1
            else:
                counts["unchanged"] += 1
        return changed

    def _apply_not_built(
        self,
        bucket: StateBucket,
        items: dict[str, EncodedItem],
        same: set[str],
        force: bool,
        counts: dict[str, int],
    ) -> list[tuple[str, bool]]:
        """The records this run did not build: a live one of a `same` group counts as
        read unchanged with the hash it has (requeued when forced or waiting on a retry);
        the others are returned (key, deleted), in order, for `_apply_absent`. One pass
        over the rows as stored: only the records it queues are decoded."""
        group_of = _group_getter(self.spec)
        absent: list[tuple[str, bool]] = []
        queue: list[str] = []
        unchanged = 0
        for key, v in bucket.held():
            if key in items:
                continue
            if type(v) is list:
                deleted, status = v[ROW_DELETED], v[ROW_STATUS]
            else:
                deleted, status = v.deleted, v.status
            if deleted or not same or group_of(key).lower() not in same:
                absent.append((key, bool(deleted)))
            elif force or status == _RETRY:
                queue.append(key)
            else:
                unchanged += 1
        for key in queue:
            rec = bucket.get(key)
            assert rec is not None
            self._queue(rec)
        counts["requeued"] += len(queue)
        counts["unchanged"] += unchanged
        counts["items_not_built"] += unchanged + len(queue)
        return absent

    def _apply_absent(
        self,
        bucket: StateBucket,
        absent: list[tuple[str, bool]],
        keep: set[str],
        force: bool,
        counts: dict[str, int],
    ) -> bool:
        """The items in the state this run did not read (key, deleted): deleted when
        the read was complete and covered them, kept otherwise."""
        changed = False
        by_ids = self.request.by_ids
        for key, deleted in absent:
            group = self.spec.group_of_key(key).lower()
            if by_ids is not None and group not in by_ids:
                continue  # outside this run's scope
            if group in keep:
                if not deleted:
                    counts["kept"] += 1
                continue
            if deleted:
                if force and (rec := bucket.get(key)) is not None and rec.held_by_saas:
                    self._queue(rec)
                    counts["requeued"] += 1
                continue
            if not self.complete:
                counts["deletions_withheld"] += 1
                continue
            if self.held:
                counts["deletions_held"] += 1  # stays live in the state and the snapshot
                continue
            rec = bucket.get(key)
            assert rec is not None
            rec.deleted = True
            rec.hash = encode(self.spec, self.spec.tombstone(key, self.now)).hash
            rec.changed_at = self.now_iso
            self._queue(rec)
            self._note("deleted", key, counts)
            changed = True
        return changed

    # --- the buckets, read and written -------------------------------------------

    def run(
        self,
        spill: BucketSpill | None,
        total: int,
        workdir: Path,
        *,
        checkpoint: Callable[[int], None] | None = None,
        checkpoint_every: int = 16,
        progress: Callable[[str, int, int | None], None] | None = None,
        start: int = 0,
        stop: Callable[[int], bool] | None = None,
        ahead: Callable[[], bool] | None = None,
    ) -> int:
        """Diff buckets start..total-1 (`spill`: what the read compiled; None when the
        source is not read), calling `checkpoint(done)` every few buckets; then, in a
        guarded run, the buckets with deletions (see the module's docstring). Returns
        `total` when both passes are done. `stop(done)` after a chunk of either pass
        ends the diff there: the run continues in another invocation, `start` at the
        value returned (in the second pass: the lowest bucket it has still to write),
        with `live`, `deferred`, `second_pass` and `held` carried over. `ahead()`: whether
        the next chunk's state may be read while a chunk is diffed (None: always); a
        chunk read ahead is diffed even when `stop` comes before it (never read twice)."""
        self._writes = None if self.request.dry_run else _Writes()
        try:
            if not self.second_pass:
                done = self._run_first(spill, total, workdir, checkpoint, checkpoint_every,
                                       progress, start, stop, ahead)  # fmt: skip
                if done < total:
                    return done
                self._decide()
                if self.deferred and stop is not None and stop(total):
                    return min(self.deferred)  # the second pass in the next invocation
            if self.deferred:
                if not self._second_pass(spill, workdir, stop):
                    return min(self.deferred)
                if checkpoint is not None:
                    checkpoint(total)
            return total
        finally:
            writes, self._writes = self._writes, None
            if writes is not None:
                writes.close()  # after a failure: waits for the writes in flight, drops them

    def diff_bucket(
        self,
        bucket: StateBucket,
        items: dict[str, EncodedItem],
        keep: set[str],
        workdir: Path,
        same: set[str] | None = None,
    ) -> None:
        """Diff and write one bucket outside `run`, as `run` does (`sync.unchanged`
        visits only the buckets that have items waiting)."""
        self._diff_one(bucket, items, keep, workdir, same)

    def _run_first(
        self,
        spill: BucketSpill | None,
        total: int,
        workdir: Path,
        checkpoint: Callable[[int], None] | None,
        checkpoint_every: int,
        progress: Callable[[str, int, int | None], None] | None,
        start: int,
        stop: Callable[[int], bool] | None,
        ahead: Callable[[], bool] | None,
    ) -> int:
        """The first pass over buckets start..total-1; how far it got."""
        self._first_pass = self.guard is not None
        chunks = [
            list(range(first, min(first + STATE_READ_CHUNK, total)))
            for first in range(start, total, STATE_READ_CHUNK)
        ]
        reads = _Prefetch(lambda numbers: self.state.read_buckets(self.spec.name, numbers))
        # A guarded run may read a bucket's items again in its second pass: they are
        # dropped once the first pass has written the bucket (`_account`).
        self._spill = spill if self.guard else None
        last = False  # `stop` said so with the next chunk read already: it is the last
        try:
            for i, numbers in enumerate(chunks):
                buckets = reads.take(numbers)
                if i + 1 < len(chunks) and not last and (ahead is None or ahead()):
                    reads.start(chunks[i + 1])  # read while this chunk is diffed
                for bucket in buckets:
                    same: set[str] = set()
                    if spill is not None:
                        # A guarded run may read a bucket's items again in its second pass.
                        items, keep, same, duplicates = spill.read(
                            bucket.bucket, consume=not self.guard
                        )
                        self.counts["duplicates"] += len(duplicates)
                    else:
                        items, keep = {}, set()
                    self._diff_one(bucket, items, keep, workdir, same)
                done = numbers[-1] + 1
                checkpointed = checkpoint is not None and (
                    done % checkpoint_every == 0 or done == total
                )
                stopping = last or (stop is not None and done < total and stop(done))
                if stopping and reads.pending:  # not read for nothing: diffed, then stop
                    last, stopping = True, False
                if checkpointed or stopping or done == total:
                    self._drain()  # what a checkpoint or the next pass counts on is written
                if checkpoint is not None and checkpointed:
                    checkpoint(min(done, *self.deferred) if self.deferred else done)
                if progress:
                    progress("diff", done, total)
                if stopping:
                    return done
            return total
        finally:
            reads.close()
            self._first_pass = False
            self._spill = None

    def _decide(self) -> None:
        """The guard's verdict on the first pass's total, taken once per run."""
        self.second_pass = True
        if self.guard is None or not self.deferred:
            return
        total = sum(self.deferred.values())
        self.held = self.guard.verdict(total, self.live)
        if self.held:  # app.py logs the held run as a warning, with its release command
            self._drop_ready()
            log.info(
                "%s: %d deletions held: %s; to apply them: %s",
                self.spec.name,
                total,
                self.held,
                release_command(self.spec.name),
            )

    def _second_pass(
        self, spill: BucketSpill | None, workdir: Path, stop: Callable[[int], bool] | None
    ) -> bool:
        """The deferred buckets, diffed again: deletions applied if the verdict allows
        them, else held. Each written bucket leaves `deferred`; False when `stop` ended
        the pass after a chunk (the rest goes on in another invocation)."""
        while self.deferred:
            chunk = sorted(self.deferred)[:STATE_READ_CHUNK]
            for number in [b for b in chunk if b in self.ready]:
                self._write_ready(number, spill)
            self._drain()
            chunk = [b for b in chunk if b in self.deferred]  # those not written yet
            for bucket in self.state.read_buckets(self.spec.name, chunk):
                items: dict[str, EncodedItem] = {}
                keep: set[str] = set()
                same: set[str] = set()
                if spill is not None:
                    items, keep, same, _ = spill.read(bucket.bucket)
                self._diff_one(bucket, items, keep, workdir, same)
                del self.deferred[bucket.bucket]
            self._drain()  # a continuation starts at the lowest bucket not written
            if self.deferred and stop is not None and stop(min(self.deferred)):
                return False
        return True

    def _make_ready(
        self,
        bucket: StateBucket,
        items: dict[str, EncodedItem],
        workdir: Path,
        counts: dict[str, int],
        content_changed: bool,
    ) -> None:
        """Keep a deferred bucket diffed as an allowed verdict would have it: its part
        written, its write prepared (see the module's docstring); not past READY_BYTES."""
        if self._ready_bytes >= READY_BYTES:
            return
        counts = dict(counts)
        written = self.counts["deltas_written"]
        if content_changed:
            self._uploads = []
            bucket.part = self._write_part(bucket, items, workdir)
            self._upload_later([])
        counts["deltas_written"] += self.counts["deltas_written"] - written
        self.counts["deltas_written"] = written  # counted when it is written
        write = self.state.prepare_write(bucket)
        self.ready[bucket.bucket] = _Ready(
            write, counts, content_changed, bucket.part, bucket.waiting()
        )
        self._ready_bytes += write.nbytes

    def _write_ready(self, number: int, spill: BucketSpill | None) -> None:
        """Write a bucket `_make_ready` kept (in a thread: `_drain` waits for it). It
        leaves `deferred` once written; when it changed since it was read, it stays
        there, to be diffed again from a fresh read."""
        ready = self.ready.pop(number)
        self._ready_bytes -= ready.write.nbytes

        def done(exc: BaseException | None) -> None:
            if isinstance(exc, ConflictError):
                log.info("bucket %s/%d changed under us; diffing it again", self.spec.name, number)
                return
            if exc is not None:
                raise exc
            self._account(number, ready.part, ready.pending, ready.counts, ready.content_changed)
            del self.deferred[number]
            if spill is not None:
                spill.drop(number)

        assert self._writes is not None
        self._writes.submit(lambda: self.state.write_prepared(ready.write), done)

    def _drop_ready(self) -> None:
        """A held verdict: the parts the first pass wrote for the deferred buckets go
        (in whichever invocation it wrote them; the re-read path writes what it holds)."""
        self.ready.clear()
        self._ready_bytes = 0
        if not self.request.dry_run:
            self.blobs.delete_keys(
                [part_key(self.spec.name, self.run_id, b) for b in self.deferred]
            )

    def _diff_one(
        self,
        bucket: StateBucket,
        items: dict[str, EncodedItem],
        keep: set[str],
        workdir: Path,
        same: set[str] | None = None,
        *,
        attempt: int = 0,
        new_part: PartRef | None = None,
    ) -> bool:
        """Diff and write one bucket; False when the first pass of a guarded run
        defers it (it has would-be deletions: nothing of it is written yet). In `run`
        the first attempt's write is done in a thread (`_drain` waits for it); a later
        attempt (after a conflict: `new_part`, the content, does not depend on it) is
        written here."""
        if self._first_pass and attempt == 0:
            self.live += bucket.live()
            shown = {kind: len(keys) for kind, keys in self.preview.items()}
        for attempt in range(attempt, CONFLICT_TRIES):  # noqa: B020
            counts, content_changed = self.apply(bucket, items, keep, same)
            if self._first_pass and counts["deleted"]:
                self.deferred[bucket.bucket] = counts["deleted"]
                if attempt == 0:
                    for kind, n in shown.items():  # the second pass notes them again
                        del self.preview[kind][n:]
                if not self.request.dry_run:
                    self._make_ready(bucket, items, workdir, counts, content_changed)
                return False
            if self.request.dry_run:
                break
            background = self._writes is not None and attempt == 0
            if content_changed:
                if new_part is None:
                    self._uploads = [] if background else None
                    new_part = self._write_part(bucket, items, workdir)
                bucket.part = new_part
            if not bucket.size and bucket.version == 0:
                break  # an empty bucket that never existed: nothing to store
            if not (content_changed or counts["requeued"]):
                break  # nothing changed: no write
            if background:
                self._write_later(bucket, items, keep, workdir, same, counts, content_changed)
                return True
            try:
                self.state.write_bucket(bucket)
                break
            except ConflictError:
                log.info("bucket %s/%d changed under us; re-applying", bucket.feed, bucket.bucket)
                if attempt == CONFLICT_TRIES - 1:
                    raise
                bucket = self.state.read_buckets(bucket.feed, [bucket.bucket])[0]
        self._upload_later([])  # parts written to no state: uploaded still, never read
        self._account(bucket.bucket, bucket.part, bucket.waiting(), counts, content_changed)
        return True

    def _write_later(
        self,
        bucket: StateBucket,
        items: dict[str, EncodedItem],
        keep: set[str],
        workdir: Path,
        same: set[str] | None,
        counts: dict[str, int],
        content_changed: bool,
    ) -> None:
        """The bucket's new part uploaded, then its state written, in a thread; when
        the write meets a newer version, the bucket is diffed again from a fresh read
        (at `_drain`, in this thread)."""
        write = self.state.prepare_write(bucket)
        number, part, pending = bucket.bucket, bucket.part, bucket.waiting()
        uploads = self._uploads or []
        self._uploads = None

        def job() -> None:
            for key, path in uploads:
                self._upload(key, path)
            self.state.write_prepared(write)

        def done(exc: BaseException | None) -> None:
            if isinstance(exc, ConflictError):
                log.info("bucket %s/%d changed under us; re-applying", self.spec.name, number)
                fresh = self.state.read_buckets(self.spec.name, [number])[0]
                new_part = part if content_changed else None
                self._diff_one(fresh, items, keep, workdir, same, attempt=1, new_part=new_part)
                return
            if exc is not None:
                raise exc
            self._account(number, part, pending, counts, content_changed)

        assert self._writes is not None
        self._writes.submit(job, done)

    def _upload_later(self, uploads: list[tuple[str, Path]]) -> None:
        """Upload what `_put_part` left for a later job, in a thread, with `uploads`."""
        pending, self._uploads = (self._uploads or []) + uploads, None
        if not pending:
            return
        if self._writes is None:
            for key, path in pending:
                self._upload(key, path)
            return

        def job() -> None:
            for key, path in pending:
                self._upload(key, path)

        def done(exc: BaseException | None) -> None:
            if exc is not None:
                raise exc

        self._writes.submit(job, done)

    def _upload(self, key: str, path: Path) -> None:
        self.blobs.put_file(key, path)
        path.unlink()

    def _drain(self) -> None:
        """Wait for the writes in flight, each then accounted (or diffed again)."""
        if self._writes is not None:
            self._writes.drain()

    def _account(
        self,
        number: int,
        part: PartRef | None,
        pending: int,
        counts: dict[str, int],
        content_changed: bool,
    ) -> None:
        for k, v in counts.items():
            self.counts[k] += v
        if part is not None:
            self.parts[number] = part
            if content_changed:
                self.counts["parts_written"] += 1
            else:
                self.counts["parts_reused"] += 1
        if self.request.resend_only:
            if counts["requeued"] or counts["stuck"]:
                self.to_export.add(number)
        elif pending:
            self.to_export.add(number)
        self.pending[number] = pending
        if self._spill is not None:  # the first pass wrote it: no second read
            self._spill.drop(number)

    def _write_part(
        self, bucket: StateBucket, items: dict[str, EncodedItem], workdir: Path
    ) -> PartRef:
        """Write the bucket's live content: a delta part on the previous content when
        few items are new, changed or deleted (none: the previous content stands), else
        a full part (compaction): this run's items
        plus, from the previous content, the live items this run did not read
        (rejected or unchanged records, partial reads)."""
        prev = bucket.part
        full = prev is None or not prev.key or self.request.cleanup  # cleanup: forgets keys
        delta = None if full else self._delta(bucket, items)
        if delta is not None:
            assert prev is not None
            if not delta:
                return prev
            part = self._put_part(bucket, delta, workdir)
            self.counts["deltas_written"] += 1
            return PartRef(
                prev.key, prev.items, prev.bytes, prev.sha256, prev.run_id, [*prev.deltas, part]
            )
        return self._put_part(
            bucket, itertools.chain(items.values(), self._carried_over(bucket, items)), workdir
        )

    def _delta(
        self, bucket: StateBucket, items: dict[str, EncodedItem]
    ) -> list[EncodedItem] | None:
        """The items this run made new or changed, and a removal line for each item it
        deleted, if they go in a delta part (None: write a full part; see
        `snapshot.delta_limit`)."""
        prev = bucket.part
        assert prev is not None
        if len(prev.deltas) >= delta_limit(prev.key):
            return None
        now = self.now_iso
        delta = [
            item
            for key, item in items.items()
            if (rec := bucket.get(key)) is not None and rec.changed_at == now and not rec.deleted
        ]
        delta += [removal(key) for key in bucket.deleted_at(now)]
        if not delta:
            return delta
        live = bucket.live()
        lines = len(delta) + sum(d.items for d in prev.deltas)
        return delta if lines * 4 <= live else None

    def _put_part(
        self, bucket: StateBucket, lines: Iterable[EncodedItem], workdir: Path
    ) -> PartRef:
        path = workdir / f"part-{bucket.bucket:04d}.jsonl.gz"
        writer = PartWriter(path)
        for item in lines:
            writer.write(item)
        size, sha = writer.close()
        key = part_key(self.spec.name, self.run_id, bucket.bucket)
        if writer.items == 0:
            path.unlink()
            return PartRef(key="", items=0, bytes=0, sha256="", run_id=self.run_id)
        if self._uploads is not None:  # uploaded by the job that writes the bucket
            self._uploads.append((key, path))
        else:
            self._upload(key, path)
        return PartRef(key=key, items=writer.items, bytes=size, sha256=sha, run_id=self.run_id)

    def _carried_over(
        self, bucket: StateBucket, items: dict[str, EncodedItem]
    ) -> Iterator[EncodedItem]:
        prev = bucket.part
        if prev is None or not prev.key:
            return
        if all(key in items for key in bucket.live_keys()):
            return  # this run read every live item: nothing to carry over
        for key, h, body in read_bucket_items(self.blobs, prev):
            if key not in items and bucket.live_hash(key) == h:
                yield EncodedItem(key=key, group="", hash=h, body=body)


@dataclass(slots=True)
class _Ready:
    """A deferred bucket diffed by the first pass, its write prepared (`Differ._make_ready`)."""

    write: PreparedWrite  # conditional on the version it was read at
    counts: dict[str, int]
    content_changed: bool
    part: PartRef | None
    pending: int  # its records waiting to be sent


class _Writes:
    """Jobs in threads (`WRITE_THREADS`), each with a `done(exception or None)` called
    in the caller's thread when `drain` collects it (or `submit`, past
    `WRITES_IN_FLIGHT`); the first exception a `done` raises is raised once every job
    is collected."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="diff-write")
        self._jobs: list[tuple[Future[None], Callable[[BaseException | None], None]]] = []

    def submit(self, job: Callable[[], None], done: Callable[[BaseException | None], None]) -> None:
        self._jobs.append((self._pool.submit(job), done))
        if len(self._jobs) > WRITES_IN_FLIGHT:
            self._collect(1)

    def drain(self) -> None:
        self._collect(len(self._jobs))

    def _collect(self, n: int) -> None:
        jobs, self._jobs = self._jobs[:n], self._jobs[n:]
        error: BaseException | None = None
        for future, done in jobs:
            exc = future.exception()
            if error is not None:
                continue  # the run fails: the rest are waited for, not accounted
            try:
                done(exc)
            except BaseException as e:  # raised below, once all are collected
                error = e
        if error is not None:
            self.drain_quietly()
            raise error

    def drain_quietly(self) -> None:
        jobs, self._jobs = self._jobs, []
        for future, _ in jobs:
            future.exception()

    def close(self) -> None:
        self.drain_quietly()
        self._pool.shutdown(wait=True)


class _Prefetch:
    """One read at a time in a thread, taken by the caller when it needs it."""

    def __init__(self, read: Callable[[list[int]], list[StateBucket]]) -> None:
        self._read = read
        self._pool: ThreadPoolExecutor | None = None
        self._next: tuple[list[int], Future[list[StateBucket]]] | None = None

    def start(self, numbers: list[int]) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="diff-read")
        self._next = (numbers, self._pool.submit(self._read, numbers))

    @property
    def pending(self) -> bool:
        """A read started and not taken yet."""
        return self._next is not None

    def take(self, numbers: list[int]) -> list[StateBucket]:
        if self._next is not None and self._next[0] == numbers:
            future, self._next = self._next[1], None
            return future.result()
        return self._read(numbers)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
