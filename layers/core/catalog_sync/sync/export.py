"""The export use-case: send the pending items of a message's buckets to the SaaS
side, one request at a time, and record each request's outcomes (while the next one
is out).

The message only says which buckets to look at: what to send is read from the
state at the time of sending (items `pending` or `retry`, with the content of each
bucket's current snapshot part). So a redelivered, duplicated or stale message
sends nothing twice that was already recorded as sent, and never sends an
outdated version. Outcomes are applied with a conditional write; an outcome for
a version that is no longer current only updates what the SaaS side holds.

One message carries several buckets (the reindex packs them up to
`EXPORT_MESSAGE_ITEMS` pending items): their items go to the sink as one stream,
which the sink cuts into requests (`FeedSink.batches`), so a request is filled
across buckets. After each request its outcomes are written to the buckets they
belong to. One request is out at a time, sent from a thread of its own; while it is
out, the export records the request before it and prepares the next one (its bucket
states and snapshot parts read, its items cut). What a request's answer decides is
decided before the next goes (a give-up sends nothing after it, an auth error ends the
export, the budget is checked between requests), so the requests and outcomes are
the ones sending and recording in turn gives; a crash or a timeout re-sends at most
the request out and the one whose record it cut short. An error met preparing the
next request is raised after the request out is recorded, as in turn. A paced sink
(ACO: its budget is shared state) sends in the export's thread, and records each
request before the next (`ExportDeps.overlap`). With a `Budget`
(the invocation's remaining time, or `RUN_TIME_BUDGET_SECONDS`), the export stops
taking requests when the time runs low and hands the buckets it did not finish back
to the queue as a new message; what it recorded stays recorded.

Each bucket gets its `PartResult` when all its pending items have an outcome (the
prerequisite check counts those per bucket).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from catalog_sync.errors import AuthError, ConflictError, RetryableError
from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import FeedSpec
from catalog_sync.infra.codec import pack, unpack
from catalog_sync.observability import get_logger
from catalog_sync.ports import (
    BlobStore,
    Clock,
    FeedSink,
    FeedState,
    ItemOutcome,
    OutgoingItem,
    PacedSink,
    is_paced,
)
from catalog_sync.sync.runs import FINISHED, PartResult
from catalog_sync.sync.snapshot import ExportMessage, read_wanted_items
from catalog_sync.sync.state import (
    CountsDelta,
    ItemState,
    Recorded,
    StateBucket,
    Status,
    apply_outcomes,
)

log = get_logger(__name__)

MAX_FAILURES_IN_RESULT = 50
CONFLICT_TRIES = 8
STATE_READ_CHUNK = 8  # bucket states read at a time
# Bucket states kept in memory while their items are out, up to this many records in
# all (about 25 MB; at 100k products a 1%-changed request spans ~20 buckets of 4,700)
HELD_RECORDS = 50_000
# A finished bucket's last outcomes stay in the journal (no rewrite of its state) while
# this call journals at most 1/LIGHT_SHARE of its records and it has fewer than
# LIGHT_ENTRIES entries: an hourly sync's export writes small entries, not every bucket
LIGHT_SHARE = 8
LIGHT_ENTRIES = 16
# Bucket states past HELD_RECORDS are stowed compressed instead (a few hundred kB per
# 10,000 records), up to this many bytes in all, so recording a request's outcomes
# does not read them again (a 1%-changed request at 500k products spans ~9 buckets)
STOWED_BYTES = 64 << 20
# Time kept back at the end of a budget for the last request's record and the hand-back;
# it grows to twice the slowest request seen.
RESERVE_SECONDS = 10.0
# A prerequisite's run older than this no longer holds its dependents back (a part
# of it stuck in the DLQ must not stop a feed for good).
PREREQUISITE_WAIT = timedelta(minutes=30)
PREREQUISITE_RUNS = 5  # recent runs of a prerequisite feed looked at
OUTCOMES = ("sent", "failed", "retry", "missing")


class NotReadyError(RetryableError):
    """A feed's prerequisites are still being exported and the part cannot be handed back."""


class Budget:
    """The time one invocation may use, shared by the messages it handles. The first
    request of the invocation is always allowed (every invocation makes progress);
    a later one only while more than the reserve is left."""

    def __init__(
        self,
        seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        reserve: float = RESERVE_SECONDS,
    ) -> None:
        self.clock = clock
        self.deadline = clock() + seconds
        self.reserve = reserve
        self.requests = 0
        self.slowest = 0.0

    def left(self) -> float:
        return self.deadline - self.clock()

    def may_send(self) -> bool:
        return self.requests == 0 or self.left() > max(self.reserve, 2 * self.slowest)

    def spent(self, seconds: float) -> None:
        self.requests += 1
        self.slowest = max(self.slowest, seconds)


@dataclass
class ExportDeps:
    state: FeedState
    blobs: BlobStore
    sink: FeedSink
    clock: Clock
    # Hands a message back to the queue, to be delivered again a little later (a part
    # whose prerequisites are still being exported). None: raise NotReadyError.
    requeue: Callable[[ExportMessage], None] | None = None
    # Hands unfinished work back to the queue at once (the budget ran low). None: the
    # export goes on whatever the budget says.
    handback: Callable[[ExportMessage], None] | None = None
    budget: Budget | None = None
    # Record a request and prepare the next (its items read and cut) while one is out.
    # Still one request out at a time, each decided on before the next goes; a paced
    # sink (ACO) sends and records in turn whatever this says.
    overlap: bool = True


@dataclass
class ExportResult:
    """What one export call did: the part results it wrote (one per bucket it
    finished), its outcome counts, its requests, and the message it handed back."""

    feed: str
    run_id: str
    counts: dict[str, int] = field(default_factory=dict)
    parts: list[PartResult] = field(default_factory=list)
    requests: int = 0
    handed_back: ExportMessage | None = None
    # the sink's budget ran out: `handed_back` is not queued yet, the caller queues
    # it for when the budget frees (only the sink knows when)
    paced: bool = False
    error: str | None = None  # why nothing was sent (deferred)


def export_part(message: ExportMessage, deps: ExportDeps) -> ExportResult:
    spec = get_feed(message.feed)
    if spec.after:
        waiting = prerequisites_pending(spec, deps)
        if waiting:
            reason = f"deferred: waiting for {waiting} to be exported first"
            if deps.requeue is None:
                raise NotReadyError(f"{message.describe()}: {reason}")
            deps.requeue(message)
            log.info("%s %s", message.describe(), reason)
            # nothing stored: the parts are not done
            return ExportResult(spec.name, message.run_id, counts={"deferred": 1}, error=reason)
    return _Export(spec, message, deps).run()


def prerequisites_pending(spec: FeedSpec, deps: ExportDeps) -> str | None:
    """The first of `spec.after` whose recent run still has parts without an export
    result (the reindex writes a run's messages before its dependents'), or None.
    A part's result is written whatever its items' outcome, so a failed item never
    holds its dependents back; neither does a run older than PREREQUISITE_WAIT."""
    since = (deps.clock() - PREREQUISITE_WAIT).isoformat()
    for name in spec.after:
        for run in deps.state.list_runs(name, limit=PREREQUISITE_RUNS):
            if run.started_at < since:
                break
            if run.status == "running":
                return name  # still compiling: its messages are not even queued
            if run.status not in FINISHED or not run.parts_enqueued:
                continue
            done = {p.unit for p in deps.state.list_part_results(name, run.run_id)}
            if len(done) < run.parts_enqueued:
                return name
    return None


class _Export:
    """One export call: the stream of the message's pending items, the requests, the
    record after each, the part result of each finished bucket."""

    def __init__(self, spec: FeedSpec, message: ExportMessage, deps: ExportDeps) -> None:
        self.spec = spec
        self.message = message
        self.deps = deps
        self.counts = {b: _zero() | message.carried.get(b, {}) for b in message.buckets}
        self.failures: dict[int, list[dict[str, str]]] = {b: [] for b in message.buckets}
        self.result = ExportResult(spec.name, message.run_id, counts=_zero())
        self.bucket_of: dict[str, int] = {}  # items handed out, not yet recorded
        self.outstanding = dict.fromkeys(message.buckets, 0)
        # states of the buckets with items handed out and not yet recorded (as read, then
        # as written), so a request's outcomes need no second read; up to HELD_RECORDS
        self.held: dict[int, StateBucket] = {}
        self.held_records = 0
        self.stowed: dict[int, _Stowed] = {}  # held states evicted, compressed
        self.stowed_bytes = 0
        self.listed: set[int] = set()
        self.done: set[int] = set()
        # buckets with outcomes only in the journal that their counts or failing index
        # do not show yet: written (folded) when they finish
        self.must_fold: set[int] = set()
        self.journaled: dict[int, int] = {}  # outcomes journaled per bucket by this call
        self.unwritten: list[PartResult] = []  # part results to write (in one batch)
        self.to_drop: list[str] = []  # journal entries folded by our writes, to delete

    def run(self) -> ExportResult:
        deps, feed, budget = self.deps, self.spec.name, self.deps.budget
        gave_up: str | None = None
        items = self._items()
        ahead = _Ahead(deps.sink.batches(feed, items))
        # one request out at a time, on a thread of its own while the next is prepared
        # (a paced sink's sends stay in this thread: its budget is shared state)
        pool = None
        if deps.overlap and not isinstance(deps.sink, PacedSink):
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-send")
        # a request's outcomes, known and acted on, recorded while the next one is out
        unrecorded: tuple[list[OutgoingItem], list[ItemOutcome]] | None = None

        def settle() -> None:
            nonlocal unrecorded
            if unrecorded is not None:
                batch, outcomes = unrecorded
                unrecorded = None
                self._record(batch, outcomes)

        try:
            while True:
                try:
                    batch = ahead.take()
                except Exception:
                    settle()  # the request out is recorded before the next one's error
                    raise
                if batch is None:
                    break
                if gave_up is not None:  # a down API does not eat the invocation
                    settle()
                    self._record(batch, [ItemOutcome("retry", gave_up)] * len(batch))
                    continue
                if budget is not None and deps.handback is not None and not budget.may_send():
                    settle()
                    self._hand_back()
                    break
                started = budget.clock() if budget is not None else 0.0
                if pool is None:
                    outcomes = deps.sink.send(feed, batch)
                else:
                    out = pool.submit(deps.sink.send, feed, batch)
                    try:
                        settle()  # the request before, recorded while this one is out
                    except BaseException:
                        _abandon(out, feed, len(batch))
                        raise
                    ahead.prepare()  # the next request's items, read while this one is out
                    outcomes = out.result()
                self.result.requests += 1
                if budget is not None:  # with its neighbours' record and preparation
                    budget.spent(budget.clock() - started)
                if deps.handback is not None and any(map(is_paced, outcomes)):
                    settle()
                    self._paced(batch, outcomes)
                    break
                if pool is None:
                    self._record(batch, outcomes)
                else:
                    unrecorded = (batch, outcomes)
                if outcomes and all(o.status == "retry" for o in outcomes):
                    gave_up = outcomes[-1].reason or "not sent"  # the same reason for the rest
            settle()
        except AuthError as exc:
            self._fold_rest()
            for b in self.message.buckets:
                if b not in self.done:
                    self._finish(b, error=f"AuthError: {exc}")
            self._write_parts()
            raise
        finally:
            if pool is not None:
                pool.shutdown()  # nothing is out by now, unless this is an error's way out
            items.close()  # the part being read, if any
        self._write_parts()
        return self.result

    # -- the stream ---------------------------------------------------------------------

    def _items(self) -> Generator[OutgoingItem, None, None]:
        numbers = self.message.buckets
        for start in range(0, len(numbers), STATE_READ_CHUNK):
            chunk = numbers[start : start + STATE_READ_CHUNK]
            for bucket in self.deps.state.read_waiting(self.spec.name, chunk):
                b = bucket.bucket
                self._hold(bucket)
                for item in self._outgoing(bucket):
                    self.bucket_of[item.key] = b
                    self.outstanding[b] += 1
                    yield item
                self.listed.add(b)
                self._maybe_finish(b)

    def _outgoing(self, bucket: StateBucket) -> Iterator[OutgoingItem]:
        pending = bucket.pending()
        cut = self.message.slices.get(bucket.bucket)
        if cut is not None:  # this message's keys of the bucket only
            pending = {k: r for k, r in pending.items() if cut.holds(k)}
        if not pending:
            return
        live = {k for k, r in pending.items() if not r.deleted}
        if live and bucket.part is not None:
            wanted = {k: pending[k].hash for k in live}
            for key, h, body in read_wanted_items(self.deps.blobs, bucket.part, wanted):
                live.discard(key)
                yield OutgoingItem(key=key, hash=h, body=body, scope=pending[key].run_id)
        self.counts[bucket.bucket]["missing"] += len(live)
        self.result.counts["missing"] += len(live)
        for key in sorted(live):
            self._failure(bucket.bucket, key, "content missing from snapshot")
        now = self.deps.clock()
        for key, rec in pending.items():
            if rec.deleted:
                body = _tombstone_body(self.spec, key, rec, now)
                yield OutgoingItem(
                    key=key, hash=rec.hash, body=body, scope=rec.run_id, deleted=True
                )

    # -- recording ------------------------------------------------------------------------

    def _record(self, batch: list[OutgoingItem], outcomes: list[ItemOutcome]) -> None:
        """Record one request's outcomes (while the next request is out, or before it
        goes when sending in turn). A bucket with items
        still to come gets a small journal entry instead of a rewrite of its whole
        state; so does a bucket this request finishes when its outcomes are few and all
        sent, none of them for a failing item (`_light`): the entry carries what it
        changes in the bucket's counts, and the bucket's next write folds it in. Any
        other bucket this request finishes is written with them (its earlier entries
        folded in). All entries and part results go in one batch write."""
        by_bucket: dict[int, dict[str, Recorded]] = {}
        for item, outcome in zip(batch, outcomes, strict=True):
            b = self.bucket_of.pop(item.key)
            sent = Recorded(item.hash, item.deleted, outcome.status, outcome.reason)
            by_bucket.setdefault(b, {})[item.key] = sent
        ending = {
            b
            for b, res in by_bucket.items()
            if b in self.listed and self.outstanding[b] == len(res)
        }
        light = {b for b in ending if self._light(b, by_bucket[b])}
        for b in sorted(ending - light):
            self._write(b, by_bucket[b])
        journal = {b: res for b, res in by_bucket.items() if b not in ending or b in light}
        deltas = self._apply_held(journal, light)
        for b, results in sorted(by_bucket.items()):
            counts = self.counts[b]
            for key, sent in results.items():
                counts[sent.status] += 1
                self.result.counts[sent.status] += 1
                if sent.status != "sent":
                    self._failure(b, key, sent.reason or "")
            self.outstanding[b] -= len(results)
            self._maybe_finish(b)
        self._write_parts(journal, deltas)

    def _light(self, b: int, results: dict[str, Recorded]) -> bool:
        """Whether a finished bucket's last outcomes may stay in the journal: its view
        is held (the counts delta is worked out on it), every outcome is `sent` for an
        item that was pending (the failing index stays right), and the outcomes this
        call journals for it are few beside its records (a reader applies them until
        the bucket's next write)."""
        view = self.held.get(b)
        if view is None or b in self.must_fold or len(view.journal) >= LIGHT_ENTRIES:
            return False
        if self.journaled.get(b, 0) + len(results) > view.total // LIGHT_SHARE:
            return False
        for key, sent in results.items():
            rec = view.get(key)
            if sent.status != "sent" or (rec is not None and rec.status is not Status.PENDING):
                return False
        return True

    def _apply_held(
        self, journal: dict[int, dict[str, Recorded]], light: set[int]
    ) -> dict[int, CountsDelta]:
        """Apply the journaled outcomes to the held views (the views go on holding what
        is recorded) and work out what they change in each bucket's counts. A bucket
        whose entry may leave its counts or failing index wrong is folded when it
        finishes (`must_fold`)."""
        deltas: dict[int, CountsDelta] = {}
        for b, results in journal.items():
            held = self.held.get(b)
            if held is None or (b not in light and not self._light(b, results)):
                self.must_fold.add(b)  # a stowed view gets them when it is taken out
            self.journaled[b] = self.journaled.get(b, 0) + len(results)
            if held is None:
                continue
            before = held.counts()
            apply_outcomes(held, results)
            deltas[b] = CountsDelta.between(held.version, before, held.counts())
        return deltas

    def _write(self, b: int, results: dict[str, Recorded]) -> None:
        """Write a bucket with `results` applied (its journal entries folded in; they
        are deleted with the next batch)."""
        held = self.held.get(b)
        view = held if held is not None else self._unstow(b)
        if view is not None and view.whole is not None:
            view = None  # a partial view: the whole bucket is read to be written
        written = _write_outcomes(self.deps, self.spec.name, b, results, view)
        self.must_fold.discard(b)
        self.to_drop += written.journal  # deleted with the next batch (marked folded)
        if held is not None:  # the state as written (re-read after a conflict)
            self.held[b] = written
            self.held_records += written.size - held.size

    def _fold_rest(self) -> None:
        """Fold the journal of the buckets this call leaves unfinished (handed back,
        or an auth error), so their counts and failing index are right."""
        for b in sorted(self.must_fold - self.done):
            self._write(b, {})

    def _hold(self, bucket: StateBucket) -> None:
        self.held[bucket.bucket] = bucket
        self.held_records += bucket.size
        while self.held_records > HELD_RECORDS and len(self.held) > 1:
            oldest = self.held.pop(next(iter(self.held)))
            self.held_records -= oldest.size
            self._stow(oldest)

    def _stow(self, bucket: StateBucket) -> None:
        """Keep an evicted view compressed (past STOWED_BYTES, or a partial view: read
        again when recorded)."""
        if bucket.whole is not None:
            return
        data = pack(bucket.encode())
        if self.stowed_bytes + len(data) > STOWED_BYTES:
            return
        self.stowed[bucket.bucket] = _Stowed(bucket.version, data, list(bucket.journal))
        self.stowed_bytes += len(data)

    def _unstow(self, b: int) -> StateBucket | None:
        """The stowed view of bucket `b` as it is now (the outcomes journaled since it
        was stowed applied), handed over once; None when it is not stowed."""
        stowed = self.stowed.pop(b, None)
        if stowed is None:
            return None
        self.stowed_bytes -= len(stowed.data)
        bucket = StateBucket.decode(self.spec.name, b, stowed.version, unpack(stowed.data))
        bucket.journal = stowed.journal
        for key, results in stowed.later:
            apply_outcomes(bucket, results)
            bucket.journal.append(key)
        return bucket

    def _failure(self, b: int, key: str, reason: str) -> None:
        if len(self.failures[b]) < MAX_FAILURES_IN_RESULT:
            self.failures[b].append({"key": key.replace("\x1f", " / "), "reason": reason})

    def _maybe_finish(self, b: int) -> None:
        if b not in self.listed or self.outstanding[b]:
            return
        if b in self.must_fold:  # its counts or failing index do not show its journal yet
            self._write(b, {})
        gone = self.held.pop(b, None)
        if gone is not None:
            self.held_records -= gone.size
        stowed = self.stowed.pop(b, None)
        if stowed is not None:
            self.stowed_bytes -= len(stowed.data)
        if b not in self.done:
            self._finish(b)

    def _finish(self, b: int, *, error: str | None = None) -> None:
        self.done.add(b)
        part = PartResult(
            feed=self.spec.name,
            run_id=self.message.run_id,
            bucket=b,
            finished_at=self.deps.clock().isoformat(),
            counts=self.counts[b],
            failures=self.failures[b],
            error=error,
            slice=self.message.slices.get(b),
        )
        self.unwritten.append(part)
        self.result.parts.append(part)

    def _write_parts(
        self,
        journal: dict[int, dict[str, Recorded]] | None = None,
        deltas: dict[int, CountsDelta] | None = None,
    ) -> None:
        """One batch write: a request's journal entries (with what they change in
        their buckets' counts), the part results of the buckets finished, the folded
        entries' deletion."""
        if not (journal or self.unwritten or self.to_drop):
            return
        keys = self.deps.state.record_outcomes(
            self.spec.name,
            journal or {},
            parts=self.unwritten,
            drop=list(dict.fromkeys(self.to_drop)),
            deltas=deltas,
        )
        self.unwritten, self.to_drop = [], []
        for b, key in zip(sorted(journal or {}), keys, strict=True):
            held = self.held.get(b)
            if held is not None:  # already applied (`_apply_held`): holds the entry now
                held.journal.append(key)
            elif b in self.stowed:  # applied when it is taken out
                self.stowed[b].later.append((key, (journal or {})[b]))

    def _paced(self, batch: list[OutgoingItem], outcomes: list[ItemOutcome]) -> None:
        """The sink's budget is out: what it sent is recorded; what it kept back stays
        pending (no outcome: it was never offered), so no bucket with such an item is
        finished: a part result would tell a dependent feed that this one is exported.
        The unfinished buckets are handed back for when the budget frees."""
        sent = [(i, o) for i, o in zip(batch, outcomes, strict=True) if not is_paced(o)]
        if sent:
            self._record([i for i, _ in sent], [o for _, o in sent])
        self._hand_back(queue=False)
        self.result.paced = True

    def _hand_back(self, *, queue: bool = True) -> None:
        """The budget ran low: the unfinished buckets go back to the queue, with the
        counts of what this call did in them (what it recorded stays recorded).
        `queue=False`: only made (`result.handed_back`), the caller queues it."""
        assert self.deps.handback is not None
        self._fold_rest()
        self._write_parts()
        rest = [b for b in self.message.buckets if b not in self.done]
        if not rest:
            return
        carried = {b: self.counts[b] for b in rest if any(self.counts[b].values())}
        follow = ExportMessage(
            feed=self.message.feed,
            run_id=self.message.run_id,
            buckets=rest,
            manifest_key=self.message.manifest_key,
            carried=carried,
            handbacks=self.message.handbacks + 1,
            slices={b: r for b, r in self.message.slices.items() if b in rest},
        )
        if queue:
            self.deps.handback(follow)
        self.result.handed_back = follow
        self.result.counts["handed_back"] = len(rest)
        log.info("time runs low: %s handed back", follow.describe())


@dataclass(slots=True)
class _Stowed:
    """A bucket's view, compressed, and the journal entries recorded for it since."""

    version: int
    data: bytes  # `codec.pack` of `StateBucket.encode()`
    journal: list[str]
    later: list[tuple[str, dict[str, Recorded]]] = field(default_factory=list)


class _Ahead:
    """The batches of the stream, the next of which may be taken ahead of time
    (`prepare`) while a request is out. An error met on the way is raised when that
    batch is taken (`take`), where the stream read in turn would raise it: the
    request out is recorded first."""

    def __init__(self, batches: Iterator[list[OutgoingItem]]) -> None:
        self._batches = batches
        self._ready = False
        self._next: list[OutgoingItem] | None = None
        self._error: Exception | None = None

    def prepare(self) -> None:
        if self._ready:
            return
        try:
            self._next = next(self._batches, None)
        except Exception as exc:  # raised when taken
            self._error = exc
        self._ready = True

    def take(self) -> list[OutgoingItem] | None:
        """The next batch (None: the stream is done)."""
        self.prepare()
        batch, error = self._next, self._error
        self._ready, self._next, self._error = False, None, None
        if error is not None:
            raise error
        return batch


def _abandon(out: Future[list[ItemOutcome]], feed: str, items: int) -> None:
    """The record of the request before failed while this one is out: it is waited for
    (a request is never left running past its export), and its answer is not recorded;
    its items stay pending and a redelivery sends them again (with the same batch id)."""
    exc = out.exception()
    log.warning(
        "%s: a request's record failed while the next one was out; the next one's "
        "answer (%s) is not recorded, its %d items are sent again on redelivery",
        feed,
        f"{type(exc).__name__}: {exc}" if exc is not None else "accepted",
        items,
        extra={"feed": feed, "items": items},
    )


def _zero() -> dict[str, int]:
    return dict.fromkeys(OUTCOMES, 0)


def _tombstone_body(spec: FeedSpec, key: str, rec: ItemState, now: datetime) -> bytes:
    """A deleted item, stamped with when the deletion was compiled."""
    when = datetime.fromisoformat(rec.changed_at) if rec.changed_at else now
    return orjson.dumps(spec.tombstone(key, when))


def _write_outcomes(
    deps: ExportDeps,
    feed: str,
    number: int,
    results: dict[str, Recorded],
    bucket: StateBucket | None,
) -> StateBucket:
    """Apply one request's outcomes to a bucket (its state as read, or read now) in
    one conditional write; re-read and re-apply on a conflict. The written bucket."""
    if bucket is None:
        bucket = deps.state.read_buckets(feed, [number])[0]
    for attempt in range(CONFLICT_TRIES):
        apply_outcomes(bucket, results)
        try:
            deps.state.write_bucket(bucket, drop_folded=False)
            return bucket
        except ConflictError:
            log.info("bucket %s/%d changed under us; re-applying outcomes", feed, number)
            if attempt == CONFLICT_TRIES - 1:
                raise
            bucket = deps.state.read_buckets(feed, [number])[0]
    raise AssertionError("unreachable")  # pragma: no cover
