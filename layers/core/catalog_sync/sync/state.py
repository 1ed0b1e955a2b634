"""Feed state: what was compiled and what the SaaS side accepted, per item.

State lives in buckets (items bucketed by group, see `feeds.bucket_of`), one
record per identity key. A bucket is read and written whole, with a version for
optimistic concurrency, so a run writes few large objects instead of one write
per item, and concurrent writers (an export of an earlier run and a reindex)
never lose each other's updates.

An item needs sending when its compiled hash differs from what the SaaS side
holds and it is not waiting on a change (failed as invalid); `status` says
where it stands:

- pending: queued for export (compiled by `run_id`).
- sent: the SaaS API accepted `hash` (`sent_hash == hash`).
- failed: the SaaS API rejected this version (`reason`); waits until it changes.
- retry: a transient failure outlasted the retries; the next run sends it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson


class Status(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    RETRY = "retry"


@dataclass(slots=True)
class ItemState:
    hash: str  # hash of the compiled version (the tombstone's hash when deleted)
    status: Status
    deleted: bool = False
    sent_hash: str | None = None  # the version the SaaS side holds, as far as we know
    reason: str | None = None  # why it failed or awaits a retry
    changed_at: str = ""  # ISO 8601 time the compiled version last changed
    run_id: str = ""  # the run that compiled or last queued this version
    attempts: int = 0  # export attempts of this version that did not succeed
    sent_deleted: bool = False  # what the SaaS side last accepted was a delete

    @property
    def needs_send(self) -> bool:
        return self.status in (Status.PENDING, Status.RETRY)

    @property
    def held_by_saas(self) -> bool:
        """True when the SaaS side holds a live (not deleted) version of the item."""
        return self.sent_hash is not None and not self.sent_deleted

    def to_row(self) -> list[Any]:
        return [
            self.hash,
            self.status.value,
            int(self.deleted),
            self.sent_hash,
            self.reason,
            self.changed_at,
            self.run_id,
            self.attempts,
            int(self.sent_deleted),
        ]

    @classmethod
    def from_row(cls, row: list[Any]) -> ItemState:
        h, status, deleted, sent_hash, reason, changed_at, run_id, attempts, sent_del = row
        return cls(
            h,
            _STATUS[status],
            bool(deleted),
            sent_hash,
            reason,
            changed_at,
            run_id,
            attempts,
            bool(sent_del),
        )


_STATUS = {s.value: s for s in Status}  # faster than Status(value) on the hot path


@dataclass(slots=True)
class PartRef:
    """The snapshot part holding the compiled content of a bucket's live items: a
    full part (`key`) and the delta parts written after it, oldest first (each holds
    the items a later run made new or changed; see `sync.snapshot.read_bucket_items`)."""

    key: str
    items: int
    bytes: int
    sha256: str
    run_id: str
    deltas: list[PartRef] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "items": self.items,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "run_id": self.run_id,
        }
        if self.deltas:
            out["deltas"] = [d.to_dict() for d in self.deltas]
        return out

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> PartRef:
        deltas = [cls.from_dict(d) for d in doc.get("deltas", ())]
        return cls(doc["key"], doc["items"], doc["bytes"], doc["sha256"], doc["run_id"], deltas)

    def objects(self) -> list[str]:
        """The stored objects of this content."""
        return [k for k in (self.key, *(d.key for d in self.deltas)) if k]


@dataclass(slots=True)
class StateBucket:
    """The state of one bucket. `part` points at the snapshot part that holds the
    content of exactly the hashes recorded here: both are written in one
    conditional write, so state and content can never disagree after a crash."""

    feed: str
    bucket: int
    version: int = 0  # 0: never written
    records: dict[str, ItemState] = field(default_factory=dict)
    part: PartRef | None = None
    # the outcome journal entries this view holds applied (see `Recorded`): a write
    # of this view marks them folded into its records, and then they can go
    journal: list[str] = field(default_factory=list)

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "part": self.part.to_dict() if self.part else None,
                "records": {k: v.to_row() for k, v in self.records.items()},
            }
        )

    @classmethod
    def decode(cls, feed: str, bucket: int, version: int, data: bytes) -> StateBucket:
        doc = orjson.loads(data) if data else {}
        part = PartRef.from_dict(doc["part"]) if doc.get("part") else None
        records = {k: ItemState.from_row(r) for k, r in doc.get("records", {}).items()}
        return cls(feed, bucket, version, records, part)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {s.value: 0 for s in Status}
        out["deleted"] = 0
        for rec in self.records.values():
            out[rec.status.value] += 1
            if rec.deleted:
                out["deleted"] += 1
        return out


MAX_REASON = 500  # characters of an API's reason kept on a record


@dataclass(frozen=True, slots=True)
class Recorded:
    """One export outcome of one item version: what was sent (`hash`, a deletion or
    not) and what the SaaS API said. The export records a request's outcomes before
    its next request, either in the bucket's state or, for a bucket whose items span
    more requests, as a small journal entry beside it (one entry per request and
    bucket) that the bucket's next write folds in: a request costs a few kB written,
    not the whole bucket, and a crash still re-sends at most that request."""

    hash: str
    deleted: bool
    status: str  # "sent", "failed" or "retry"
    reason: str | None = None

    def to_row(self) -> list[Any]:
        return [self.hash, int(self.deleted), self.status, self.reason]

    @classmethod
    def from_row(cls, row: list[Any]) -> Recorded:
        h, deleted, status, reason = row
        return cls(h, bool(deleted), status, reason)


def encode_outcomes(results: dict[str, Recorded]) -> bytes:
    return orjson.dumps({k: r.to_row() for k, r in results.items()})


def decode_outcomes(data: bytes) -> dict[str, Recorded]:
    return {k: Recorded.from_row(r) for k, r in orjson.loads(data).items()}


def apply_outcomes(bucket: StateBucket, results: dict[str, Recorded]) -> None:
    """Apply one request's outcomes to a bucket's records. An outcome for a version
    that is no longer current only updates what the SaaS side holds."""
    for key, sent in results.items():
        rec = bucket.records.get(key)
        if rec is None:
            continue
        current = rec.hash == sent.hash
        if sent.status == "sent":
            rec.sent_hash = sent.hash
            rec.sent_deleted = sent.deleted
            if current:
                rec.status = Status.SENT
                rec.reason = None
                rec.attempts = 0
        elif current and rec.status is not Status.SENT:
            rec.status = Status.FAILED if sent.status == "failed" else Status.RETRY
            rec.reason = (sent.reason or "")[:MAX_REASON]
            rec.attempts += 1


FAILING_INDEX_CAP = 200  # failing items listed beside a bucket (more: read the bucket)
FAILING_REASON_CHARS = 300


@dataclass(slots=True)
class FailingIndex:
    """The failed and retrying items of a bucket, stored beside it when it is written
    (key order; at most FAILING_INDEX_CAP, `complete` False when there were more):
    who failed and why, without decoding every record of the bucket."""

    bucket: int
    items: dict[str, ItemState]
    complete: bool = True

    @classmethod
    def of(cls, bucket: StateBucket) -> FailingIndex:
        failing = sorted(
            (k, r) for k, r in bucket.records.items() if r.status in (Status.FAILED, Status.RETRY)
        )
        shown = failing[:FAILING_INDEX_CAP]
        items = {
            k: ItemState(
                r.hash,
                r.status,
                deleted=r.deleted,
                reason=(r.reason or "")[:FAILING_REASON_CHARS] or None,
                changed_at=r.changed_at,
                run_id=r.run_id,
                attempts=r.attempts,
            )
            for k, r in shown
        }
        return cls(bucket.bucket, items, complete=len(shown) == len(failing))

    def encode(self) -> bytes:
        return orjson.dumps(
            {"complete": self.complete, "items": {k: r.to_row() for k, r in self.items.items()}}
        )

    @classmethod
    def decode(cls, bucket: int, data: bytes) -> FailingIndex:
        doc = orjson.loads(data)
        items = {k: ItemState.from_row(r) for k, r in doc["items"].items()}
        return cls(bucket, items, complete=bool(doc["complete"]))


@dataclass(slots=True)
class BucketCounts:
    """What `StateBucket.counts()` gave when the bucket was last written, stored
    beside it: status counts of a feed without reading its records."""

    bucket: int
    items: int
    counts: dict[str, int]
    updated_at: str = ""
