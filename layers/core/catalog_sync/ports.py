"""The small interfaces the use-cases need. Adapters implement them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol, runtime_checkable

from catalog_sync.records import ReadReport, SourceIssue
from catalog_sync.sync.runs import ContinuationMessage, FeedMeta, PartResult, RunRecord
from catalog_sync.sync.snapshot import ExportMessage
from catalog_sync.sync.state import CountsDelta, PreparedWrite, Recorded, StateBucket

Clock = Callable[[], datetime]
IdGenerator = Callable[[], str]


@runtime_checkable
class CatalogSource(Protocol):
    """Reads a catalog. `read` yields source records (for products:
    `catalog.CatalogProduct`) and `records.Rejected` for records that could not be
    built; `report()` tells, once `read` is exhausted, whether the read was complete."""

    def read(self, *, skus: Collection[str] | None = None) -> Iterator[Any]: ...

    def report(self) -> ReadReport: ...

    def describe(self) -> str: ...


# What a source may offer besides `read`: the engine asks with isinstance, so what a
# source must offer is written here, not probed for.


class SourceSplit(Protocol):
    """A partitioned read: what pass 1 rejected, the partitions to compile (picklable,
    for worker processes), and `merge` to count the workers' records and warnings
    into the source's report."""

    rejected: list[Any]
    partitions: list[Any]
    # what decides a record besides its raw rows, when the partitions can give record
    # fingerprints (`sync.fingerprints`); None: they cannot
    fingerprint_context: str | None

    def merge(self, records: int, warnings: Collection[SourceIssue] = ()) -> None: ...

    def warn(self, issue: SourceIssue) -> None: ...


@runtime_checkable
class PartitionedSource(CatalogSource, Protocol):
    """A source whose read splits into independent partitions (the export CSV)."""

    def split(
        self, *, skus: Collection[str] | None = None
    ) -> AbstractContextManager[SourceSplit]: ...


class SourcePage(Protocol):
    """One page of a paged read: its entries, where a later read may go on after it
    (None: it cannot), and whether it is the read's last page."""

    entries: list[Any]
    cursor: int | None
    final: bool


@runtime_checkable
class PagedSource(CatalogSource, Protocol):
    """A source read page by page that can stop at a page boundary and go on there
    in a later invocation (the REST API, by `entity_id`; `sync.readstep`)."""

    def resumable(self, skus: Collection[str] | None = None) -> bool: ...

    def pages(
        self, *, skus: Collection[str] | None = None, after: int | None = None
    ) -> Generator[SourcePage, None, None]: ...


@runtime_checkable
class IncrementalSource(CatalogSource, Protocol):
    """A source that can read only what changed since a watermark (the REST API).
    An incremental read is never complete (no deletions; aggregate feeds skip it);
    `high_water_mark` is where the next one starts, and a `failed` read (a page could
    not be read) must not move it."""

    @property
    def incremental(self) -> bool: ...

    @property
    def failed(self) -> bool: ...

    high_water_mark: datetime | None


@dataclass(frozen=True, slots=True)
class SourceContent:
    """The bytes a source reads, digested once (`sync.unchanged`): `digest` is
    XXH3-128 over them and the source's own mapping context; `identity` what says
    they were not modified since (file status, S3 object version), cheap to take
    again; `settled`: `identity` can pin the bytes (nothing was written to them in
    the last seconds, so a later write shows in it)."""

    digest: str
    identity: tuple[str, ...]
    settled: bool


@runtime_checkable
class DigestedSource(CatalogSource, Protocol):
    """A source whose whole input is bytes (the export CSV): `content()` streams and
    digests them (None: they cannot be read now; the read will say why);
    `identity()` takes their identity again (None: unreadable)."""

    def content(self) -> SourceContent | None: ...

    def identity(self) -> tuple[str, ...] | None: ...


@runtime_checkable
class ProductIdSource(CatalogSource, Protocol):
    """A source that knows Magento's product ids (`resync --by-ids --id-type productId`);
    `note` carries an issue found before the read (an unknown id) into its report."""

    def skus_for_ids(self, ids: Collection[int]) -> dict[int, str]: ...

    def note(self, issue: SourceIssue) -> None: ...


class BlobStore(Protocol):
    """Immutable objects by key (S3 in AWS, a folder in tests)."""

    def put_file(self, key: str, path: Path) -> None: ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...  # raises NotFoundError

    def open(self, key: str) -> BinaryIO: ...  # streaming read; raises NotFoundError

    def exists(self, key: str) -> bool: ...

    def list_keys(self, prefix: str) -> Iterator[str]: ...  # keys starting with prefix

    def delete_keys(self, keys: Sequence[str]) -> None: ...  # missing keys are no error


class FeedState(Protocol):
    """Feed state (DynamoDB in AWS). Buckets are written with optimistic
    concurrency: `write_bucket` raises `ConflictError` if the stored version is no
    longer `bucket.version`, and on success sets `bucket.version` to the new one."""

    def read_buckets(self, feed: str, buckets: Sequence[int]) -> list[StateBucket]: ...

    def read_waiting(self, feed: str, buckets: Sequence[int]) -> list[StateBucket]:
        """The buckets for the export: where the state keeps an index of a bucket's
        records waiting to be sent, a partial view of those (`StateBucket.whole`, never
        written), else the whole bucket; journal applied."""
        ...

    def write_bucket(self, bucket: StateBucket, *, drop_folded: bool = True) -> None:
        """Also marks the journal entries in `bucket.journal` folded; they are deleted
        then, or left in `bucket.journal` for the caller to drop (`drop_folded=False`)."""
        ...

    def prepare_write(self, bucket: StateBucket) -> PreparedWrite:
        """`write_bucket` in two steps: this one works the write out (CPU only), and
        `write_prepared` does it, as `write_bucket` would have then (conflict included),
        from any thread; the bucket itself is left as it is."""
        ...

    def write_prepared(self, write: PreparedWrite, *, drop_folded: bool = True) -> None: ...

    def record_outcomes(
        self,
        feed: str,
        outcomes: dict[int, dict[str, Recorded]],
        *,
        parts: Sequence[PartResult] = (),
        drop: Sequence[str] = (),
        deltas: dict[int, CountsDelta] | None = None,
    ) -> list[str]:
        """Journal one request's outcomes, an entry per bucket (keys in bucket order;
        `read_buckets` applies an entry until a write of its bucket folds it in), with
        part results to store and folded entries to delete, in one batch. `deltas`:
        what an entry changes in its bucket's status counts (see `CountsDelta`)."""
        ...

    def read_meta(self, feed: str) -> FeedMeta | None: ...

    def write_meta(self, meta: FeedMeta) -> None: ...

    def put_run(self, run: RunRecord) -> None: ...

    def get_run(self, feed: str, run_id: str) -> RunRecord | None: ...

    def list_runs(self, feed: str, limit: int = 10) -> list[RunRecord]: ...

    def put_part_result(self, result: PartResult) -> None: ...

    def list_part_results(self, feed: str, run_id: str) -> list[PartResult]: ...

    def acquire_lease(self, feed: str, holder: str, now: datetime, ttl_seconds: int) -> None:
        """Take the feed's lease, or raise `LeaseHeldError` naming the holder."""
        ...

    def release_lease(self, feed: str, holder: str) -> None: ...


class ExportQueue(Protocol):
    def send(self, messages: Sequence[ExportMessage]) -> None: ...


class ContinuationQueue(Protocol):
    """Where a run that ran out of time hands itself on (SQS in AWS, consumed by the
    reindex function)."""

    def send(self, message: ContinuationMessage) -> None: ...


@dataclass(frozen=True, slots=True)
class OutgoingItem:
    key: str  # identity key
    hash: str  # content hash of this version
    body: bytes  # the item's JSON
    # What tells this send from an earlier send of the same content: the run that
    # queued it. A retry of the same send keeps its batch id (x-request-id); a
    # resync of unchanged content gets a new one, so the SaaS side applies it.
    scope: str = ""
    deleted: bool = False  # a tombstone: send it to the delete endpoint (ACO)


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    status: Literal["sent", "failed", "retry"]
    reason: str | None = None


class FeedSink(Protocol):
    """The SaaS feed API. `batches` cuts a stream of items into the requests the
    target takes (by count and bytes, deletions apart where the API wants them apart),
    taking an item from the stream only when it is needed: stop iterating and nothing
    more is taken. `send` sends items (one such batch: one request, more only to retry
    or split), splits on 413, retries transient failures with backoff, and returns one
    outcome per item, in order. Raises `AuthError` on 401/403 (nothing in that call
    counts as sent)."""

    def batches(self, feed: str, items: Iterable[OutgoingItem]) -> Iterator[list[OutgoingItem]]: ...

    def send(self, feed: str, items: Sequence[OutgoingItem]) -> list[ItemOutcome]: ...


def batches_of(items: Iterable[OutgoingItem], size: int) -> Iterator[list[OutgoingItem]]:
    """`items` in lists of `size` (a sink that batches by count alone)."""
    batch: list[OutgoingItem] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


PACED = "paced:"  # the reason of a `retry` outcome for an item a budget kept from sending


def is_paced(outcome: ItemOutcome) -> bool:
    """Not sent because a budget was out (the item was never offered to the SaaS)."""
    return outcome.status == "retry" and (outcome.reason or "").startswith(PACED)


@runtime_checkable
class PacedSink(FeedSink, Protocol):
    """A sink under a shared budget (ACO's requests per second and products per
    minute). An item its budget keeps from sending comes back `retry` with a reason
    starting with PACED. `take_paced()` says, once, when (epoch seconds) the budget
    that stopped a `send` since the last call frees up; None when nothing was paced."""

    def take_paced(self) -> float | None: ...


@runtime_checkable
class WindowedSource(IncrementalSource, Protocol):
    """An incremental source that can also read given SKUs whatever their change
    time: the products whose special price window opened or closed since the last
    run (`sync/windows.py`), which an incremental read would not see."""

    def include(self, skus: Collection[str]) -> None: ...
