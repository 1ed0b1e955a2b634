"""The export use-case: send a bucket's pending items to the SaaS feed API and
record each item's outcome.

The message only says which bucket to look at: what to send is read from the
state at the time of sending (items `pending` or `retry`, with the content of the
bucket's current snapshot part). So a redelivered, duplicated or stale message
sends nothing twice that was already recorded as sent, and never sends an
outdated version. Outcomes are applied with a conditional write; an outcome for
a version that is no longer current only updates what the SaaS side holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from catalog_sync.errors import ConflictError, RetryableError
from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import FeedSpec
from catalog_sync.observability import get_logger
from catalog_sync.ports import (
    BlobStore,
    Clock,
    FeedSink,
    FeedState,
    ItemOutcome,
    OutgoingItem,
)
from catalog_sync.sync.runs import FINISHED, PartResult
from catalog_sync.sync.snapshot import ExportMessage, read_part
from catalog_sync.sync.state import ItemState, StateBucket, Status

log = get_logger(__name__)

SEND_CHUNK = 5_000  # items handed to the sink at a time (it batches further)
MAX_FAILURES_IN_RESULT = 50
MAX_REASON = 500
CONFLICT_TRIES = 8
# A prerequisite's run older than this no longer holds its dependents back (a part
# of it stuck in the DLQ must not stop a feed for good).
PREREQUISITE_WAIT = timedelta(minutes=30)
PREREQUISITE_RUNS = 5  # recent runs of a prerequisite feed looked at


class NotReadyError(RetryableError):
    """A feed's prerequisites are still being exported and the part cannot be handed back."""


@dataclass
class ExportDeps:
    state: FeedState
    blobs: BlobStore
    sink: FeedSink
    clock: Clock
    # Hands a message back to the queue, to be delivered again a little later (a part
    # whose prerequisites are still being exported). None: raise NotReadyError.
    requeue: Callable[[ExportMessage], None] | None = None


@dataclass(frozen=True, slots=True)
class _Sent:
    hash: str
    deleted: bool
    outcome: ItemOutcome


def export_part(message: ExportMessage, deps: ExportDeps) -> PartResult:
    spec = get_feed(message.feed)
    if spec.after:
        waiting = prerequisites_pending(spec, deps)
        if waiting:
            reason = f"deferred: waiting for {waiting} to be exported first"
            if deps.requeue is None:
                raise NotReadyError(f"{spec.name} bucket {message.bucket}: {reason}")
            deps.requeue(message)
            log.info("%s bucket %d %s", spec.name, message.bucket, reason)
            return PartResult(
                feed=spec.name,
                run_id=message.run_id,
                bucket=message.bucket,
                finished_at=deps.clock().isoformat(),
                counts={"deferred": 1},
                error=reason,
            )  # not stored: the part is not done
    bucket = deps.state.read_buckets(spec.name, [message.bucket])[0]
    results: dict[str, _Sent] = {}
    missing: list[str] = []
    try:
        for chunk in _chunks(_outgoing(spec, deps, bucket, missing), SEND_CHUNK):
            outcomes = deps.sink.send(spec.name, [o for o, _ in chunk])
            for (item, deleted), outcome in zip(chunk, outcomes, strict=True):
                results[item.key] = _Sent(item.hash, deleted, outcome)
    finally:
        # Record what was decided even when the run stops (auth error, crash of the
        # sink): items accepted before the stop are not sent again.
        if results:
            _record(deps, spec.name, message.bucket, results, bucket)
    counts = {"sent": 0, "failed": 0, "retry": 0, "missing": len(missing)}
    failures: list[dict[str, str]] = []
    for key, sent in results.items():
        counts[sent.outcome.status] += 1
        if sent.outcome.status != "sent" and len(failures) < MAX_FAILURES_IN_RESULT:
            failures.append(
                {"key": key.replace("\x1f", " / "), "reason": sent.outcome.reason or ""}
            )
    for key in missing[: max(0, MAX_FAILURES_IN_RESULT - len(failures))]:
        failures.append(
            {"key": key.replace("\x1f", " / "), "reason": "content missing from snapshot"}
        )
    result = PartResult(
        feed=spec.name,
        run_id=message.run_id,
        bucket=message.bucket,
        finished_at=deps.clock().isoformat(),
        counts=counts,
        failures=failures,
    )
    deps.state.put_part_result(result)
    return result


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
            done = {p.bucket for p in deps.state.list_part_results(name, run.run_id)}
            if len(done) < run.parts_enqueued:
                return name
    return None


def _outgoing(
    spec: FeedSpec, deps: ExportDeps, bucket: StateBucket, missing: list[str]
) -> Iterator[tuple[OutgoingItem, bool]]:
    pending = {k: r for k, r in bucket.records.items() if r.needs_send}
    if not pending:
        return
    live = {k for k, r in pending.items() if not r.deleted}
    if live and bucket.part is not None and bucket.part.key:
        with deps.blobs.open(bucket.part.key) as stream:
            for key, h, body in read_part(stream):
                rec = pending.get(key)
                if rec is not None and not rec.deleted and rec.hash == h:
                    live.discard(key)
                    item = OutgoingItem(key=key, hash=h, body=body, scope=rec.run_id)
                    yield item, False
    missing.extend(sorted(live))
    for key, rec in pending.items():
        if rec.deleted:
            body = _tombstone_body(spec, key, rec, deps.clock())
            yield (
                OutgoingItem(key=key, hash=rec.hash, body=body, scope=rec.run_id, deleted=True),
                True,
            )


def _tombstone_body(spec: FeedSpec, key: str, rec: ItemState, now: datetime) -> bytes:
    """A deleted item, stamped with when the deletion was compiled."""
    when = datetime.fromisoformat(rec.changed_at) if rec.changed_at else now
    return orjson.dumps(spec.tombstone(key, when))


def _chunks(
    it: Iterator[tuple[OutgoingItem, bool]], size: int
) -> Iterator[list[tuple[OutgoingItem, bool]]]:
    chunk: list[tuple[OutgoingItem, bool]] = []
    for x in it:
        chunk.append(x)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def apply_outcomes(bucket: StateBucket, results: dict[str, _Sent]) -> None:
    for key, sent in results.items():
        rec = bucket.records.get(key)
        if rec is None:
            continue
        outcome = sent.outcome
        current = rec.hash == sent.hash
        if outcome.status == "sent":
            rec.sent_hash = sent.hash
            rec.sent_deleted = sent.deleted
            if current:
                rec.status = Status.SENT
                rec.reason = None
                rec.attempts = 0
        elif current and rec.status is not Status.SENT:
            rec.status = Status.FAILED if outcome.status == "failed" else Status.RETRY
            rec.reason = (outcome.reason or "")[:MAX_REASON]
            rec.attempts += 1


def _record(
    deps: ExportDeps, feed: str, number: int, results: dict[str, _Sent], bucket: StateBucket
) -> None:
    for attempt in range(CONFLICT_TRIES):
        apply_outcomes(bucket, results)
        try:
            deps.state.write_bucket(bucket)
            return
        except ConflictError:
            log.info("bucket %s/%d changed under us; re-applying outcomes", feed, number)
            if attempt == CONFLICT_TRIES - 1:
                raise
            bucket = deps.state.read_buckets(feed, [number])[0]
