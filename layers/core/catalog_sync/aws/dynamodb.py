"""`FeedState` over one DynamoDB table (an injected low-level boto3 client).

Key schema: `pk` (S, HASH) + `sk` (S, RANGE); TTL attribute `ttl`. Items:

- state bucket: pk=`state#{feed}#{bucket:04d}`, sk=`bucket`; `data` (B, `codec.pack` of
  `StateBucket.encode()`) or `overflow` (S, the blob key holding that data when it
  is too large for an item), `version` (N), `counts` (M), `items` (N), `updated_at`,
  `folded` (SS, the outcome journal entries its data already holds), `failing` (B, the
  failing index), `waiting` (B, packed `StateBucket.encode_waiting()`: the records
  waiting to be sent and the part, when there are at most `WAITING_INDEX_CAP`).
- outcome journal entry: pk=`outcomes#{feed}`, sk=`{bucket:04d}#{time}-{token}`; `data`
  (B, packed `state.encode_outcomes`): one export request's outcomes for one bucket
  (`record_outcomes`); `counts` (M) and `base` (N): what they change in the bucket's
  status counts, on the bucket's version `base` (`read_counts` adds them while that is
  the version stored). `read_buckets` applies the entries not `folded` yet, in key
  order; the bucket's next write folds them and then deletes them.
- feed meta: pk=`feed#{feed}`, sk=`meta`, `doc` (FeedMeta JSON).
- run: pk=`feed#{feed}`, sk=`run#{run_id}`, `doc` (RunRecord JSON).
- part result: pk=`run#{feed}#{run_id}`, sk=`part#{bucket:04d}` (a bucket's later slices
  `part#{bucket:04d}.{slice:02d}`), `doc` (PartResult JSON).
- lease: pk=`feed#{feed}`, sk=`lease`; `holder`, `expires_at`, `expires_epoch`, `ttl`.

Finished runs and part results carry `ttl` (`run_retention_days` after they were
written finished): DynamoDB's TTL removes them. Buckets and feed meta never expire.
Every blob is zstd (`infra.codec`); zlib blobs, as earlier versions wrote them, read.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from catalog_sync.errors import (
    CatalogSyncError,
    ConfigError,
    ConflictError,
    LeaseHeldError,
    RetryableError,
)
from catalog_sync.infra.codec import pack, unpack
from catalog_sync.observability import get_logger
from catalog_sync.ports import BlobStore
from catalog_sync.sync.runs import FeedMeta, PartResult, RunRecord
from catalog_sync.sync.state import (
    BucketCounts,
    CountsDelta,
    FailingIndex,
    PreparedWrite,
    Recorded,
    StateBucket,
    apply_outcomes,
    decode_outcomes,
    encode_outcomes,
)

# A DynamoDB item holds at most 400 KB; keep room for the other attributes.
MAX_INLINE_BYTES = 350_000
BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
log = get_logger(__name__)
BATCH_GET_TRIES = 8
# An expired lease item stays readable this long (for `status`), then TTL removes it.
LEASE_KEEP_SECONDS = 86_400


_BUCKET_PROJECTION = ("pk, #d, #v, overflow, folded", {"#d": "data", "#v": "version"})
_COUNTS_PROJECTION = (
    "pk, #c, #i, updated_at, folded, #v",
    {"#c": "counts", "#i": "items", "#v": "version"},
)
_FAILING_PROJECTION: tuple[str, dict[str, str]] = ("pk, failing", {})
_WAITING_PROJECTION = (
    "pk, waiting, #v, #i, folded",
    {"#v": "version", "#i": "items"},
)
# A bucket with at most this many records waiting to be sent keeps an index of them
# beside it (`read_waiting`): the export of an hourly sync reads those, not the bucket
WAITING_INDEX_CAP = 2_000


def bucket_pk(feed: str, bucket: int) -> str:
    return f"state#{feed}#{bucket:04d}"


def journal_pk(feed: str) -> str:
    return f"outcomes#{feed}"


def overflow_key(feed: str, bucket: int, version: int, token: str) -> str:
    return f"state/{feed}/{bucket:04d}/{version}-{token}.bin"


def _overflow_version(key: str, prefix: str) -> int:
    """The bucket version an overflow object was written for (see `overflow_key`);
    an unexpected name counts as new (never deleted)."""
    head = key[len(prefix) :].partition("-")[0]
    return int(head) if head.isdigit() else 1 << 62


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class DynamoFeedState:
    """The feed state in DynamoDB. Buckets are versioned (optimistic concurrency);
    a bucket whose compressed data outgrows an item goes to `overflow` (a blob
    store), the item keeping a pointer."""

    def __init__(
        self,
        dynamodb_client: Any,
        table_name: str,
        *,
        overflow: BlobStore | None = None,
        max_inline_bytes: int = MAX_INLINE_BYTES,
        sleep: Any = time.sleep,
        run_retention_days: int | None = None,
    ) -> None:
        self.run_retention_seconds = run_retention_days * 86_400 if run_retention_days else None
        self.ddb = dynamodb_client
        self.table = table_name
        self.overflow = overflow
        self.max_inline_bytes = max_inline_bytes
        self._sleep = sleep

    # --- errors -------------------------------------------------------------

    def _fail(self, exc: ClientError) -> Exception:
        if _code(exc) == "ResourceNotFoundException":
            return ConfigError(f"DynamoDB table {self.table!r} does not exist")
        return exc

    def _call(self, op: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.ddb, op)(TableName=self.table, **kwargs)
        except ClientError as exc:
            raise self._fail(exc) from exc

    # --- state buckets --------------------------------------------------------

    def read_buckets(self, feed: str, buckets: Sequence[int]) -> list[StateBucket]:
        found = self._items_of(feed, buckets, _BUCKET_PROJECTION)
        out = [self._decode_bucket(feed, b, found.get(bucket_pk(feed, b))) for b in buckets]
        self._apply_journal(feed, out, found)
        return out

    def read_waiting(self, feed: str, buckets: Sequence[int]) -> list[StateBucket]:
        """The buckets as the export needs them: a partial view (`StateBucket.whole`) of
        the records waiting to be sent, from the index written beside each bucket (a
        few kB where the whole state is hundreds), or the whole bucket where it has no
        index (too many waiting, or written before there was one). The journal applied,
        as `read_buckets` applies it."""
        found = self._items_of(feed, buckets, _WAITING_PROJECTION)
        out: list[StateBucket | None] = []
        whole: list[int] = []
        for b in buckets:
            item = found.get(bucket_pk(feed, b))
            if item is None or "waiting" not in item:
                out.append(None)
                whole.append(b)
                continue
            version, size = int(item["version"]["N"]), int(item["items"]["N"])
            data = unpack(item["waiting"]["B"])
            out.append(StateBucket.decode_waiting(feed, b, version, size, data))
        partial = [v for v in out if v is not None]
        self._apply_journal(feed, partial, found)
        rest = iter(self.read_buckets(feed, whole) if whole else [])
        return [v if v is not None else next(rest) for v in out]

    def _items_of(
        self, feed: str, buckets: Sequence[int], projection: tuple[str, dict[str, str]]
    ) -> dict[str, dict[str, Any]]:
        """The stored items of buckets (by pk), the attributes of `projection`."""
        wanted = list(dict.fromkeys(buckets))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            keys = [
                {"pk": {"S": bucket_pk(feed, b)}, "sk": {"S": "bucket"}}
                for b in wanted[start : start + BATCH_GET_LIMIT]
            ]
            for item in self._batch_get(keys, projection=projection):
                found[item["pk"]["S"]] = item
        return found

    def _apply_journal(
        self, feed: str, views: list[StateBucket], found: dict[str, dict[str, Any]]
    ) -> None:
        """Apply to each view the journal entries its stored item has not folded yet
        (in key order), and list every entry of its bucket in its `journal`."""
        if not views:
            return
        numbers = [v.bucket for v in views]
        journal = self._read_journal(feed, min(numbers), max(numbers))
        for bucket in views:
            item = found.get(bucket_pk(feed, bucket.bucket)) or {}
            folded = set(item.get("folded", {}).get("SS", ()))
            for sk, data in journal.get(bucket.bucket, ()):
                if sk not in folded:
                    apply_outcomes(bucket, decode_outcomes(unpack(data)))
                bucket.journal.append(sk)

    # --- the outcome journal ------------------------------------------------------

    def record_outcomes(
        self,
        feed: str,
        outcomes: dict[int, dict[str, Recorded]],
        *,
        parts: Sequence[PartResult] = (),
        drop: Sequence[str] = (),
        deltas: dict[int, CountsDelta] | None = None,
    ) -> list[str]:
        """One journal entry per bucket with one request's outcomes, the part results of
        the buckets it finished and the deletion of journal entries already folded
        (`drop`), in one batch write (or a few: 25 items a call); the new entries' keys,
        in bucket order. Readers of a bucket apply its entries until a write folds them.
        `deltas`: per bucket, what the outcomes change in its status counts and the
        bucket version they were worked out on (`read_counts` adds them)."""
        stamp = f"{time.time_ns() // 1000:016d}-{uuid.uuid4().hex[:8]}"
        keys, requests = [], []
        for number in sorted(outcomes):
            sk = f"{number:04d}#{stamp}"
            data = pack(encode_outcomes(outcomes[number]))
            item = {"pk": {"S": journal_pk(feed)}, "sk": {"S": sk}, "data": {"B": data}}
            delta = (deltas or {}).get(number)
            if delta is not None:
                item["base"] = {"N": str(delta.base)}
                item["counts"] = {"M": {k: {"N": str(v)} for k, v in delta.counts.items()}}
            requests.append({"PutRequest": {"Item": item}})
            keys.append(sk)
        requests += [{"PutRequest": {"Item": self._part_item(p)}} for p in parts]
        requests += [
            {"DeleteRequest": {"Key": {"pk": {"S": journal_pk(feed)}, "sk": {"S": k}}}}
            for k in drop
        ]
        self._batch_write(requests)
        return keys

    def _read_journal(self, feed: str, low: int, high: int) -> dict[int, list[tuple[str, bytes]]]:
        """The journal entries of buckets low..high, in key order per bucket."""
        out: dict[int, list[tuple[str, bytes]]] = {}
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": journal_pk(feed)},
                ":low": {"S": f"{low:04d}#"},
                ":high": {"S": f"{high:04d}$"},  # "$" sorts right after "#"
            },
            "ConsistentRead": True,
        }
        while True:
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                sk = item["sk"]["S"]
                out.setdefault(int(sk[:4]), []).append((sk, item["data"]["B"]))
            if "LastEvaluatedKey" not in response:
                return out
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _drop_journal(self, feed: str, keys: Sequence[str]) -> None:
        """Delete folded journal entries. A failure leaves them: the bucket's
        `folded` keeps them from being applied again, and its next write retries."""
        deletes = [
            {"DeleteRequest": {"Key": {"pk": {"S": journal_pk(feed)}, "sk": {"S": k}}}}
            for k in keys
        ]
        try:
            self._batch_write(deletes)
        except Exception:
            log.warning("could not delete folded outcome entries of %s", feed, exc_info=True)

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), BATCH_WRITE_LIMIT):
            request = {self.table: requests[start : start + BATCH_WRITE_LIMIT]}
            for attempt in range(BATCH_GET_TRIES):
                try:
                    response = self.ddb.batch_write_item(RequestItems=request)
                except ClientError as exc:
                    raise self._fail(exc) from exc
                request = response.get("UnprocessedItems") or {}
                if not request:
                    break
                self._sleep(min(2.0, 0.05 * 2**attempt))
            else:
                raise RetryableError(
                    f"DynamoDB table {self.table!r}: writes still unprocessed after "
                    f"{BATCH_GET_TRIES} tries (throttled)"
                )

    def read_counts(self, feed: str, buckets: Sequence[int]) -> dict[int, BucketCounts]:
        """Status counts of buckets, without their records: the `counts` and `items`
        written with each bucket (one small read per bucket, whatever its size), plus
        what the journal entries not folded yet change, where they were worked out on
        the version stored (one query for the lot). Buckets never written are left out."""
        out: dict[int, BucketCounts] = {}
        versions: dict[int, tuple[int, set[str]]] = {}
        for number, item in self._bucket_items(feed, buckets, _COUNTS_PROJECTION):
            out[number] = BucketCounts(
                bucket=number,
                items=int(item.get("items", {}).get("N", 0)),
                counts={k: int(v["N"]) for k, v in item.get("counts", {}).get("M", {}).items()},
                updated_at=item.get("updated_at", {}).get("S", ""),
            )
            folded = set(item.get("folded", {}).get("SS", ()))
            versions[number] = (int(item.get("version", {}).get("N", 0)), folded)
        if out:
            for number, sk, base, delta in self._journal_counts(feed, min(out), max(out)):
                version, folded = versions.get(number, (-1, set()))
                if number in out and base == version and sk not in folded:
                    counts = out[number].counts
                    for k, v in delta.items():
                        counts[k] = counts.get(k, 0) + v
        return out

    def _journal_counts(
        self, feed: str, low: int, high: int
    ) -> Iterator[tuple[int, str, int, dict[str, int]]]:
        """(bucket, key, base version, counts delta) of the journal entries of buckets
        low..high that carry a delta."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": journal_pk(feed)},
                ":low": {"S": f"{low:04d}#"},
                ":high": {"S": f"{high:04d}$"},
            },
            "ProjectionExpression": "sk, #b, #c",
            "ExpressionAttributeNames": {"#b": "base", "#c": "counts"},
            "ConsistentRead": True,
        }
        while True:
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                if "counts" not in item:
                    continue
                sk = item["sk"]["S"]
                delta = {k: int(v["N"]) for k, v in item["counts"]["M"].items()}
                yield int(sk[:4]), sk, int(item["base"]["N"]), delta
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def read_failing(self, feed: str, buckets: Sequence[int]) -> dict[int, FailingIndex]:
        """The failing items of buckets, from the index written with each bucket
        (small reads). Buckets written without one (or never) are left out."""
        return {
            number: FailingIndex.decode(number, unpack(item["failing"]["B"]))
            for number, item in self._bucket_items(feed, buckets, _FAILING_PROJECTION)
            if "failing" in item
        }

    def _bucket_items(
        self, feed: str, buckets: Sequence[int], projection: tuple[str, dict[str, str]]
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """(bucket number, the attributes of `projection`) of each bucket ever written."""
        wanted = list(dict.fromkeys(buckets))
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            chunk = wanted[start : start + BATCH_GET_LIMIT]
            keys = [{"pk": {"S": bucket_pk(feed, b)}, "sk": {"S": "bucket"}} for b in chunk]
            for item in self._batch_get(keys, projection=projection):
                yield int(item["pk"]["S"].rsplit("#", 1)[1]), item

    def _batch_get(
        self, keys: list[dict[str, Any]], projection: tuple[str, dict[str, str]] | None = None
    ) -> Iterator[dict[str, Any]]:
        expression, names = projection or _BUCKET_PROJECTION
        keys_and_attributes: dict[str, Any] = {
            "Keys": keys,
            "ConsistentRead": True,
            "ProjectionExpression": expression,
        }
        if names:
            keys_and_attributes["ExpressionAttributeNames"] = names
        request: dict[str, Any] = {self.table: keys_and_attributes}
        for attempt in range(BATCH_GET_TRIES):
            try:
                response = self.ddb.batch_get_item(RequestItems=request)
            except ClientError as exc:
                raise self._fail(exc) from exc
            yield from response.get("Responses", {}).get(self.table, [])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return
            self._sleep(min(2.0, 0.05 * 2**attempt))
        left = len(request.get(self.table, {}).get("Keys", []))
        raise RetryableError(
            f"DynamoDB table {self.table!r}: {left} state buckets still unprocessed after "
            f"{BATCH_GET_TRIES} tries (throttled)"
        )

    def _decode_bucket(self, feed: str, bucket: int, item: dict[str, Any] | None) -> StateBucket:
        if item is None:
            return StateBucket(feed=feed, bucket=bucket, version=0)
        version = int(item["version"]["N"])
        if "overflow" in item:
            if self.overflow is None:
                raise ConfigError(
                    f"state bucket {bucket} of feed {feed!r} is stored in the blob store "
                    f"({item['overflow']['S']}) but no overflow store is configured"
                )
            compressed = self.overflow.get_bytes(item["overflow"]["S"])
        else:
            compressed = item["data"]["B"]
        return StateBucket.decode(feed, bucket, version, unpack(compressed))

    def write_bucket(self, bucket: StateBucket, *, drop_folded: bool = True) -> None:
        """The conditional write of a bucket. The journal entries of `bucket.journal`
        are folded in; they are deleted after the write, or with `drop_folded=False`
        left for the caller to drop (`record_outcomes(drop=...)`, in its next batch):
        they stay in `bucket.journal` meanwhile (a write of this view again keeps them
        marked folded)."""
        self.write_prepared(self.prepare_write(bucket), drop_folded=drop_folded)
        bucket.version += 1
        if bucket.journal and drop_folded:
            bucket.journal = []

    def prepare_write(self, bucket: StateBucket) -> PreparedWrite:
        """The item of a bucket's write (and its data, for an overflow object when it
        is too large for the item), worked out from the bucket: nothing is written."""
        if bucket.whole is not None:
            raise CatalogSyncError(
                f"state bucket {bucket.bucket} of feed {bucket.feed!r}: a partial view "
                "(the records waiting to be sent) cannot be written"
            )
        compressed = pack(bucket.encode())
        counts = bucket.counts()
        item: dict[str, Any] = {
            "pk": {"S": bucket_pk(bucket.feed, bucket.bucket)},
            "sk": {"S": "bucket"},
            "version": {"N": str(bucket.version + 1)},
            "counts": {"M": {k: {"N": str(v)} for k, v in counts.items()}},
            "items": {"N": str(bucket.size)},
        }
        if bucket.journal:  # entries whose outcomes this data holds
            item["folded"] = {"SS": list(bucket.journal)}
        failing = FailingIndex.of(bucket)
        if failing.items:  # who failed and why, readable without the records
            item["failing"] = {"B": pack(failing.encode())}
        if counts["pending"] + counts["retry"] <= WAITING_INDEX_CAP:  # what to send next
            item["waiting"] = {"B": pack(bucket.encode_waiting())}
        indexes = sum(len(item.get(a, {}).get("B", b"")) for a in ("failing", "waiting"))
        spill: bytes | None = None  # for the overflow store
        if len(compressed) + indexes <= self.max_inline_bytes:
            item["data"] = {"B": compressed}
        elif self.overflow is not None:
            spill = compressed
        else:
            raise CatalogSyncError(
                f"state bucket {bucket.bucket} of feed {bucket.feed!r} is "
                f"{len(compressed)} bytes compressed ({bucket.size} items), more than "
                f"a DynamoDB item holds ({self.max_inline_bytes}): configure more state "
                "buckets, or an overflow blob store"
            )
        return PreparedWrite(
            bucket.feed,
            bucket.bucket,
            bucket.version,
            list(bucket.journal),
            (item, spill),
            len(compressed) + indexes,
        )

    def write_prepared(self, write: PreparedWrite, *, drop_folded: bool = True) -> None:
        """Do a prepared write (`prepare_write`), conditional on the version the bucket
        was read at (`ConflictError` when it is no longer stored). Safe to call from
        another thread than the one that prepared it."""
        item, spill = write.payload
        item = {**item, "updated_at": {"S": datetime.now(UTC).isoformat()}}
        expected = write.version
        written: str | None = None  # the overflow object this write adds
        if spill is not None:
            assert self.overflow is not None
            # A fresh key per write: a writer that loses the race below never
            # overwrites the winner's object.
            key = overflow_key(write.feed, write.bucket, expected + 1, uuid.uuid4().hex[:12])
            self.overflow.put_bytes(key, spill)
            item["overflow"] = {"S": key}
            written = key
        if expected == 0:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":expected": {"N": str(expected)}},
            }
        try:
            # The replaced item only matters to an overflow write (its old object can
            # go); inline writes do not ship the old data back.
            returns = "ALL_OLD" if written is not None else "NONE"
            response = self.ddb.put_item(
                TableName=self.table, Item=item, ReturnValues=returns, **condition
            )
        except ClientError as exc:
            self._drop_overflow(written)  # nobody points at it
            if _code(exc) == "ConditionalCheckFailedException":
                raise ConflictError(
                    f"state bucket {write.bucket} of feed {write.feed!r} changed since it "
                    f"was read (expected version {expected})"
                ) from None
            raise self._fail(exc) from exc
        if write.journal and drop_folded:
            self._drop_journal(write.feed, write.journal)
        old = response.get("Attributes") or {}
        replaced = old.get("overflow", {}).get("S")
        if replaced:
            self._after_replacing(write.feed, write.bucket, expected + 1, replaced, written)

    def _after_replacing(
        self, feed: str, bucket: int, version: int, replaced: str, written: str | None
    ) -> None:
        """Overflow objects of replaced versions are deleted one write later: the
        version just replaced may still be read by someone who fetched its pointer a
        moment ago; older ones are two writes old. Keeps one bucket's overflow
        objects to about two, instead of one per write forever."""
        prefix = f"state/{feed}/{bucket:04d}/"
        # Only versions before the replaced one: a newer object may belong to a writer
        # that has already read this write and is about to put the next version.
        below = version - 1
        assert self.overflow is not None
        try:
            stale = [
                k
                for k in self.overflow.list_keys(prefix)
                if k not in (replaced, written) and _overflow_version(k, prefix) < below
            ]
            if stale:
                self.overflow.delete_keys(stale)
        except Exception:  # storage hiccup: the next write tries again
            log.warning("could not delete old overflow state of %s", prefix, exc_info=True)

    def _drop_overflow(self, key: str | None) -> None:
        if key is None or self.overflow is None:
            return
        try:
            self.overflow.delete_keys([key])
        except Exception:
            log.warning("could not delete unused overflow state %s", key, exc_info=True)

    # --- feed meta, runs, part results --------------------------------------

    def _put_doc(self, pk: str, sk: str, doc: str, *, expires: bool = False) -> None:
        item = {"pk": {"S": pk}, "sk": {"S": sk}, "doc": {"S": doc}}
        if expires and self.run_retention_seconds:
            item["ttl"] = {"N": str(int(time.time()) + self.run_retention_seconds)}
        self._call("put_item", Item=item)

    def _get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self._call(
            "get_item", Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = response.get("Item")
        return item

    def _query(
        self, pk: str, prefix: str, *, newest_first: bool, limit: int | None
    ) -> Iterator[str]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": prefix}},
            "ScanIndexForward": not newest_first,
            "ConsistentRead": True,
        }
        left = limit
        while True:
            if left is not None:
                kwargs["Limit"] = left
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                yield item["doc"]["S"]
            if left is not None:
                left -= len(response.get("Items", []))
                if left <= 0:
                    return
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def read_meta(self, feed: str) -> FeedMeta | None:
        item = self._get_item(f"feed#{feed}", "meta")
        return FeedMeta.model_validate_json(item["doc"]["S"]) if item else None

    def write_meta(self, meta: FeedMeta) -> None:
        self._put_doc(f"feed#{meta.feed}", "meta", meta.model_dump_json())

    def put_run(self, run: RunRecord) -> None:
        # A running run never expires: only a finished one gets its TTL.
        finished = run.finished_at is not None
        self._put_doc(
            f"feed#{run.feed}", f"run#{run.run_id}", run.model_dump_json(), expires=finished
        )

    def get_run(self, feed: str, run_id: str) -> RunRecord | None:
        item = self._get_item(f"feed#{feed}", f"run#{run_id}")
        return RunRecord.model_validate_json(item["doc"]["S"]) if item else None

    def list_runs(self, feed: str, limit: int = 10) -> list[RunRecord]:
        if limit <= 0:
            return []
        docs = self._query(f"feed#{feed}", "run#", newest_first=True, limit=limit)
        return [RunRecord.model_validate_json(d) for d in docs]

    def put_part_result(self, result: PartResult) -> None:
        self._put_doc(
            f"run#{result.feed}#{result.run_id}",
            result.sk,
            result.model_dump_json(),
            expires=True,
        )

    def _part_item(self, result: PartResult) -> dict[str, Any]:
        item = {
            "pk": {"S": f"run#{result.feed}#{result.run_id}"},
            "sk": {"S": result.sk},
            "doc": {"S": result.model_dump_json()},
        }
        if self.run_retention_seconds:
            item["ttl"] = {"N": str(int(time.time()) + self.run_retention_seconds)}
        return item

    def list_part_results(self, feed: str, run_id: str) -> list[PartResult]:
        docs = self._query(f"run#{feed}#{run_id}", "part#", newest_first=False, limit=None)
        return [PartResult.model_validate_json(d) for d in docs]

    # --- the lease -------------------------------------------------------------

    def acquire_lease(self, feed: str, holder: str, now: datetime, ttl_seconds: int) -> None:
        now_epoch = now.timestamp()
        expires_epoch = math.ceil(now_epoch + ttl_seconds)
        expires_at = datetime.fromtimestamp(expires_epoch, UTC).isoformat()
        key = {"pk": {"S": f"feed#{feed}"}, "sk": {"S": "lease"}}
        for _ in range(3):
            try:
                self.ddb.put_item(
                    TableName=self.table,
                    Item={
                        **key,
                        "holder": {"S": holder},
                        "expires_at": {"S": expires_at},
                        "expires_epoch": {"N": str(expires_epoch)},
                        "ttl": {"N": str(expires_epoch + LEASE_KEEP_SECONDS)},
                    },
                    ConditionExpression=(
                        "attribute_not_exists(pk) OR expires_epoch < :now OR holder = :me"
                    ),
                    ExpressionAttributeValues={
                        ":now": {"N": repr(now_epoch)},
                        ":me": {"S": holder},
                    },
                )
                return
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise self._fail(exc) from exc
            current = self._get_item(f"feed#{feed}", "lease")
            if current is not None:
                raise LeaseHeldError(feed, current["holder"]["S"], current["expires_at"]["S"])
            # released between our write and our read: try again
        raise ConflictError(f"could not take the lease of feed {feed!r}: it keeps changing")

    def release_lease(self, feed: str, holder: str) -> None:
        try:
            self.ddb.delete_item(
                TableName=self.table,
                Key={"pk": {"S": f"feed#{feed}"}, "sk": {"S": "lease"}},
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": {"S": holder}},
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise self._fail(exc) from exc
