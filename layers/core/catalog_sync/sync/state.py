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

from collections.abc import ItemsView, KeysView
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

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


# A record's row, as `ItemState.to_row()` lays it out and the state stores it.
ROW_HASH, ROW_STATUS, ROW_DELETED, ROW_CHANGED_AT, ROW_RUN_ID = 0, 1, 2, 5, 6
_WAITING = (Status.PENDING.value, Status.RETRY.value)  # needs_send, as stored
_FAILING = (Status.FAILED.value, Status.RETRY.value)


def _row_of(value: Any) -> list[Any]:
    """orjson's `default` in `StateBucket.encode`: the row of a decoded record."""
    if isinstance(value, ItemState):
        return value.to_row()
    raise TypeError(f"cannot encode {type(value).__name__} in a state bucket")


class StateBucket:
    """The state of one bucket. `part` points at the snapshot part that holds the
    content of exactly the hashes recorded here: both are written in one
    conditional write, so state and content can never disagree after a crash.

    A decoded bucket keeps its records as the rows it read and makes an `ItemState`
    of a row only when asked for it (`get`, or `records` for all of them): a diff
    touching 1% of a bucket's items decodes and re-encodes 1% of them, the rest going
    from the stored JSON back to it untouched (same bytes: a row is what `to_row`
    writes). The scans (`counts`, `live`, `waiting`, ...) read rows as they are."""

    __slots__ = ("_decoded", "_held", "bucket", "feed", "journal", "part", "version", "whole")

    def __init__(
        self,
        feed: str,
        bucket: int,
        version: int = 0,  # 0: never written
        records: dict[str, ItemState] | None = None,
        part: PartRef | None = None,
        journal: list[str] | None = None,
    ) -> None:
        self.feed = feed
        self.bucket = bucket
        self.version = version
        self.part = part
        # the outcome journal entries this view holds applied (see `Recorded`): a write
        # of this view marks them folded into its records, and then they can go
        self.journal: list[str] = journal if journal is not None else []
        # key -> ItemState, or the record's stored row (a list, as decoded) until
        # something asks for it as an ItemState, which then replaces the row
        self._held: dict[str, Any] = records if records is not None else {}
        self._decoded = True  # every value of `_held` is an ItemState
        # None: this view holds every record. A number: a partial view, of the records
        # waiting to be sent only, of a bucket of that many records (the export's, from
        # the index kept beside the bucket); it is never written.
        self.whole: int | None = None

    @property
    def records(self) -> dict[str, ItemState]:
        """Every record (key -> ItemState, in the stored order), the rows not decoded
        yet decoded now; the dict is the bucket's own (changes to it are the bucket's)."""
        if not self._decoded:
            held, from_row = self._held, ItemState.from_row
            for key in [k for k, v in held.items() if type(v) is list]:
                held[key] = from_row(held[key])
            self._decoded = True
        return cast(dict[str, ItemState], self._held)

    @records.setter
    def records(self, records: dict[str, ItemState]) -> None:
        self._held = records
        self._decoded = True

    def get(self, key: str) -> ItemState | None:
        """The record of `key` (decoded now if it was a row), None when there is none."""
        value = self._held.get(key)
        if type(value) is list:
            value = self._held[key] = ItemState.from_row(value)
        return cast("ItemState | None", value)

    def add(self, key: str, rec: ItemState) -> None:
        self._held[key] = rec

    def record_keys(self) -> KeysView[str]:
        return self._held.keys()

    def held(self) -> ItemsView[str, Any]:
        """(key, record) in order, each record an ItemState or its stored row (see
        `ROW_*`) as it is held now: for scans that decode only what they change."""
        return self._held.items()

    @property
    def size(self) -> int:
        """How many records this view holds (deleted ones included)."""
        return len(self._held)

    @property
    def total(self) -> int:
        """How many records the bucket has, whether this view holds them all or not."""
        return self.size if self.whole is None else self.whole

    def live(self) -> int:
        """How many records are not deleted."""
        return sum(
            1 for v in self._held.values() if not (v[ROW_DELETED] if type(v) is list else v.deleted)
        )

    def waiting(self) -> int:
        """How many records need sending (`ItemState.needs_send`)."""
        return sum(
            1
            for v in self._held.values()
            if (v[ROW_STATUS] if type(v) is list else v.status) in _WAITING
        )

    def pending(self) -> dict[str, ItemState]:
        """The records that need sending (`ItemState.needs_send`), in order, decoded
        (only they are: an export of 1% of a bucket decodes 1% of its rows)."""
        keys = [
            k
            for k, v in self._held.items()
            if (v[ROW_STATUS] if type(v) is list else v.status) in _WAITING
        ]
        return {k: rec for k in keys if (rec := self.get(k)) is not None}

    def live_keys(self) -> list[str]:
        """The keys of the records not deleted, in order."""
        return [
            k
            for k, v in self._held.items()
            if not (v[ROW_DELETED] if type(v) is list else v.deleted)
        ]

    def deleted_at(self, changed_at: str) -> list[str]:
        """The keys of the deleted records whose `changed_at` is `changed_at`, in order."""
        return [
            k
            for k, v in self._held.items()
            if (
                v[ROW_DELETED] and v[ROW_CHANGED_AT] == changed_at
                if type(v) is list
                else v.deleted and v.changed_at == changed_at
            )
        ]

    def live_hash(self, key: str) -> str | None:
        """The hash of `key`'s record when it is live (None: no record, or deleted)."""
        v = self._held.get(key)
        if v is None:
            return None
        if type(v) is list:
            return None if v[ROW_DELETED] else cast(str, v[ROW_HASH])
        return None if v.deleted else cast(str, v.hash)

    def failing(self) -> list[tuple[str, ItemState]]:
        """The failed and retrying records, in key order."""
        keys = sorted(
            k
            for k, v in self._held.items()
            if (v[ROW_STATUS] if type(v) is list else v.status) in _FAILING
        )
        return [(k, rec) for k in keys if (rec := self.get(k)) is not None]

    def encode(self) -> bytes:
        if self.whole is not None:
            raise ValueError(f"bucket {self.bucket} of {self.feed!r}: a partial view is not stored")
        return orjson.dumps(
            {"part": self.part.to_dict() if self.part else None, "records": self._held},
            default=_row_of,
            option=orjson.OPT_PASSTHROUGH_DATACLASS,
        )

    def encode_waiting(self) -> bytes:
        """The index of the records waiting to be sent, and the part (`decode_waiting`)."""
        waiting = {
            k: v
            for k, v in self._held.items()
            if (v[ROW_STATUS] if type(v) is list else v.status) in _WAITING
        }  # rows as stored, records as their rows: nothing decoded
        return orjson.dumps(
            {"part": self.part.to_dict() if self.part else None, "records": waiting},
            default=_row_of,
            option=orjson.OPT_PASSTHROUGH_DATACLASS,
        )

    @classmethod
    def decode_waiting(
        cls, feed: str, bucket: int, version: int, whole: int, data: bytes
    ) -> StateBucket:
        """A partial view: the waiting records of a bucket of `whole` records."""
        out = cls.decode(feed, bucket, version, data)
        out.whole = whole
        return out

    @classmethod
    def decode(cls, feed: str, bucket: int, version: int, data: bytes) -> StateBucket:
        doc = orjson.loads(data) if data else {}
        part = PartRef.from_dict(doc["part"]) if doc.get("part") else None
        out = cls(feed, bucket, version, doc.get("records", {}), part)
        out._decoded = not out._held  # rows, decoded when asked for
        return out

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {s.value: 0 for s in Status}
        deleted = 0
        for v in self._held.values():
            if type(v) is list:
                out[v[ROW_STATUS]] += 1
                deleted += 1 if v[ROW_DELETED] else 0
            else:
                out[v.status.value] += 1
                deleted += 1 if v.deleted else 0
        out["deleted"] = deleted
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StateBucket):
            return NotImplemented
        return (self.feed, self.bucket, self.version, self.part, self.journal) == (
            other.feed,
            other.bucket,
            other.version,
            other.part,
            other.journal,
        ) and self.records == other.records

    def __repr__(self) -> str:
        return (
            f"StateBucket(feed={self.feed!r}, bucket={self.bucket}, version={self.version}, "
            f"records={self.size}, part={self.part!r}, journal={self.journal!r})"
        )


@dataclass(slots=True)
class PreparedWrite:
    """A bucket's write worked out (`FeedState.prepare_write`: encoded, compressed, its
    indexes made) and not done yet (`FeedState.write_prepared`): the CPU part of a write
    apart from its I/O, so the diff can do the one while another thread does the other,
    and keep a diffed bucket compact until it may be written."""

    feed: str
    bucket: int
    version: int  # the version the bucket was read at: the write expects it
    journal: list[str]  # the outcome journal entries the encoded records hold applied
    payload: Any  # the state store's own form of the write
    nbytes: int  # about how much memory `payload` holds


MAX_REASON = 500  # characters of an API's reason kept on a record


@dataclass(frozen=True, slots=True)
class Recorded:
    """One export outcome of one item version: what was sent (`hash`, a deletion or
    not) and what the SaaS API said. The export records a request's outcomes while
    its next request is out, either in the bucket's state or, for a bucket whose items
    span more requests, as a small journal entry beside it (one entry per request and
    bucket) that the bucket's next write folds in: a request costs a few kB written,
    not the whole bucket, and a crash re-sends at most that request and the one out."""

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
        rec = bucket.get(key)
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
        failing = bucket.failing()
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


@dataclass(frozen=True, slots=True)
class CountsDelta:
    """What a journal entry's outcomes change in its bucket's status counts, worked
    out on the bucket's version `base` (a reader adds it while that version stands)."""

    base: int
    counts: dict[str, int]

    @classmethod
    def between(cls, base: int, before: dict[str, int], after: dict[str, int]) -> CountsDelta:
        return cls(
            base, {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
        )


@dataclass(slots=True)
class BucketCounts:
    """What `StateBucket.counts()` gave when the bucket was last written, stored
    beside it: status counts of a feed without reading its records."""

    bucket: int
    items: int
    counts: dict[str, int]
    updated_at: str = ""
