"""In-memory fakes of the ports, for fast unit tests of the use-cases."""

from __future__ import annotations

import copy
import io
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from catalog_sync.errors import ConflictError, LeaseHeldError, NotFoundError
from catalog_sync.ports import ItemOutcome, OutgoingItem, batches_of
from catalog_sync.records import ReadReport
from catalog_sync.sync.runs import FeedMeta, PartResult, RunRecord
from catalog_sync.sync.snapshot import ExportMessage
from catalog_sync.sync.state import PreparedWrite, Recorded, StateBucket, apply_outcomes

# The six standard feeds (the registry may also hold test feeds).
FEEDS = (
    "products",
    "prices",
    "variants",
    "inventoryStockStatus",
    "categories",
    "productAttributes",
)


class MemoryBlobs:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_file(self, key: str, path: Path) -> None:
        self.objects[key] = path.read_bytes()

    def put_bytes(self, key: str, data: bytes) -> None:
        self.objects[key] = data

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise NotFoundError(key) from None

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self.get_bytes(key))

    def exists(self, key: str) -> bool:
        return key in self.objects

    def list_keys(self, prefix: str) -> Iterator[str]:
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))

    def delete_keys(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.objects.pop(key, None)


class MemoryState:
    def __init__(self) -> None:
        self.buckets: dict[tuple[str, int], tuple[int, bytes]] = {}
        self.meta: dict[str, FeedMeta] = {}
        self.runs: dict[tuple[str, str], RunRecord] = {}
        self.parts: dict[tuple[str, str, str], PartResult] = {}
        self.leases: dict[str, tuple[str, datetime]] = {}
        self.writes = 0
        self.journal: dict[tuple[str, int], dict[str, dict[str, Recorded]]] = {}
        self.seq = 0
        self.folded: set[str] = set()  # written into their bucket, not deleted yet
        self._lock = threading.Lock()

    def read_buckets(self, feed: str, buckets: Sequence[int]) -> list[StateBucket]:
        return self._read(feed, buckets)

    def _read(self, feed: str, buckets: Sequence[int]) -> list[StateBucket]:
        out = []
        for b in buckets:
            version, data = self.buckets.get((feed, b), (0, b""))
            bucket = StateBucket.decode(feed, b, version, data)
            for key, results in sorted(self.journal.get((feed, b), {}).items()):
                if key not in self.folded:  # as the DynamoDB state: not folded yet
                    apply_outcomes(bucket, results)
                bucket.journal.append(key)
            out.append(bucket)
        return out

    def read_waiting(self, feed: str, buckets: Sequence[int]) -> list[StateBucket]:
        """Partial views of the waiting records, as the DynamoDB state gives them."""
        out = []
        for bucket in self._read(feed, buckets):
            data = bucket.encode_waiting()
            view = StateBucket.decode_waiting(
                feed, bucket.bucket, bucket.version, bucket.size, data
            )
            view.journal = bucket.journal
            out.append(view)
        return out

    def write_bucket(self, bucket: StateBucket, *, drop_folded: bool = True) -> None:
        self.write_prepared(self.prepare_write(bucket), drop_folded=drop_folded)
        bucket.version += 1
        if drop_folded:
            bucket.journal = []

    def prepare_write(self, bucket: StateBucket) -> PreparedWrite:
        if bucket.whole is not None:
            raise AssertionError("a partial view was written")
        data = bucket.encode()
        return PreparedWrite(
            bucket.feed, bucket.bucket, bucket.version, list(bucket.journal), data, len(data)
        )

    def write_prepared(self, write: PreparedWrite, *, drop_folded: bool = True) -> None:
        with self._lock:  # the diff writes from a thread
            version, _ = self.buckets.get((write.feed, write.bucket), (0, b""))
            if version != write.version:
                raise ConflictError(f"{write.feed}/{write.bucket}")
            self.buckets[(write.feed, write.bucket)] = (write.version + 1, write.payload)
            entries = self.journal.get((write.feed, write.bucket), {})
            for key in write.journal:  # folded into what was just written
                if drop_folded:
                    entries.pop(key, None)
                else:
                    self.folded.add(key)
            self.writes += 1

    def record_outcomes(
        self,
        feed: str,
        outcomes: dict[int, dict[str, Recorded]],
        *,
        parts: Sequence[PartResult] = (),
        drop: Sequence[str] = (),
        deltas: dict[int, Any] | None = None,  # counts deltas: no counts kept here
    ) -> list[str]:
        self.seq += 1
        keys = []
        for b in sorted(outcomes):
            key = f"{b:04d}#{self.seq:012d}"
            self.journal.setdefault((feed, b), {})[key] = dict(outcomes[b])
            keys.append(key)
        for part in parts:
            self.put_part_result(part)
        for key in drop:
            self.journal.get((feed, int(key[:4])), {}).pop(key, None)
            self.folded.discard(key)
        return keys

    def all_records(self, feed: str) -> dict[str, Any]:
        out = {}
        for bucket in self.read_buckets(feed, sorted(b for f, b in self.buckets if f == feed)):
            out.update(bucket.records)
        return out

    def read_meta(self, feed: str) -> FeedMeta | None:
        m = self.meta.get(feed)
        return m.model_copy() if m else None

    def write_meta(self, meta: FeedMeta) -> None:
        self.meta[meta.feed] = meta.model_copy()

    def put_run(self, run: RunRecord) -> None:
        self.runs[(run.feed, run.run_id)] = run.model_copy(deep=True)

    def get_run(self, feed: str, run_id: str) -> RunRecord | None:
        run = self.runs.get((feed, run_id))
        return run.model_copy(deep=True) if run is not None else None  # as a fresh read

    def list_runs(self, feed: str, limit: int = 10) -> list[RunRecord]:
        runs = sorted((r for (f, _), r in self.runs.items() if f == feed), key=lambda r: r.run_id)
        return [r.model_copy(deep=True) for r in reversed(runs)][:limit]

    def put_part_result(self, result: PartResult) -> None:
        self.parts[(result.feed, result.run_id, result.sk)] = result.model_copy(deep=True)

    def list_part_results(self, feed: str, run_id: str) -> list[PartResult]:
        return [r for (f, rid, _), r in sorted(self.parts.items()) if f == feed and rid == run_id]

    def acquire_lease(self, feed: str, holder: str, now: datetime, ttl_seconds: int) -> None:
        current = self.leases.get(feed)
        if current and current[0] != holder and current[1] > now:
            raise LeaseHeldError(feed, current[0], current[1].isoformat())
        self.leases[feed] = (holder, now + timedelta(seconds=ttl_seconds))

    def release_lease(self, feed: str, holder: str) -> None:
        if self.leases.get(feed, ("",))[0] == holder:
            del self.leases[feed]


class MemoryQueue:
    def __init__(self) -> None:
        self.messages: list[ExportMessage] = []

    def send(self, messages: Sequence[ExportMessage]) -> None:
        self.messages.extend(messages)

    def drain(self) -> list[ExportMessage]:
        out, self.messages = self.messages, []
        return out


@dataclass
class ScriptedSink:
    """Accepts everything, except keys listed in `invalid` (failed) or `flaky`
    (retry); `received` keeps every accepted item body by key."""

    invalid: dict[str, str] = field(default_factory=dict)
    flaky: set[str] = field(default_factory=set)
    received: dict[str, bytes] = field(default_factory=dict)
    calls: list[list[str]] = field(default_factory=list)

    def batches(self, feed: str, items: Iterable[OutgoingItem]) -> Iterator[list[OutgoingItem]]:
        return batches_of(items, 1000)

    def send(self, feed: str, items: Sequence[OutgoingItem]) -> list[ItemOutcome]:
        self.calls.append([i.key for i in items])
        out = []
        for item in items:
            if item.key in self.invalid:
                out.append(ItemOutcome("failed", self.invalid[item.key]))
            elif item.key in self.flaky:
                out.append(ItemOutcome("retry", "HTTP 503 after 5 tries"))
            else:
                self.received[item.key] = item.body
                out.append(ItemOutcome("sent"))
        return out


class ListSource:
    """A catalog source over a list of records (and `Rejected`s)."""

    def __init__(self, entries: list[Any], *, complete: bool = True) -> None:
        self.entries = entries
        self.complete = complete

    def read(self, *, skus: Collection[str] | None = None) -> Iterator[Any]:
        for e in self.entries:
            sku = getattr(e, "sku", None)
            if skus is None or (sku is not None and sku.lower() in skus):
                yield copy.deepcopy(e)

    def report(self) -> ReadReport:
        return ReadReport(complete=self.complete, records=len(self.entries))

    def describe(self) -> str:
        return "list"


class Clock:
    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 29, 5, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.n:08x}"
