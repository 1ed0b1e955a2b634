"""Snapshot format: gzipped JSON Lines parts plus a manifest.

A snapshot is the whole compiled feed at the end of a run: per state bucket, a
full part and the delta parts written after it, each line `{"k": key, "h": hash,
"i": item}`. Parts are immutable; a part whose bucket did not change is not
written again, the manifest points at the earlier run's object. A run that changes
a few items of a bucket writes a delta part with just those (so a 1% change writes
about 1% of the bytes; a deletion, a removal line); when the deltas pile up (`delta_limit`, or more
lines than a quarter of the bucket's live items) the next change writes a full
part again (compaction). Read a bucket's content with `read_bucket_items` only. The manifest
holds per-part item counts, byte sizes and SHA-256 checksums of the stored
(compressed) objects.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import orjson
from pydantic import BaseModel, Field, model_validator

from catalog_sync.sync.canonical import EncodedItem
from catalog_sync.sync.runs import KeyRange

if TYPE_CHECKING:
    from catalog_sync.ports import BlobStore


class DeltaInfo(BaseModel):
    key: str
    items: int
    bytes: int
    sha256: str
    run_id: str  # the run that wrote the object


class PartInfo(DeltaInfo):
    bucket: int
    # delta parts after `key`, oldest first: the bucket's content is the full part
    # with each delta's lines on top (see `read_bucket_items`)
    deltas: list[DeltaInfo] = Field(default_factory=list)

    def objects(self) -> list[str]:
        return [k for k in (self.key, *(d.key for d in self.deltas)) if k]


class Manifest(BaseModel):
    feed: str
    run_id: str
    created_at: str
    buckets: int
    source: str | None = None
    complete: bool = True
    counts: dict[str, int] = Field(default_factory=dict)
    parts: list[PartInfo] = Field(default_factory=list)


class ExportMessage(BaseModel):
    """One SQS message: export the pending items of some buckets of one run.

    The reindex packs buckets into a message, in bucket order, up to
    `EXPORT_MESSAGE_ITEMS` pending items (`pack_messages`), so one export fills each
    request across buckets. A bucket that does not fit is cut by key (`slices`): the
    first keys go with this message, the rest with the next, so every message but a
    feed's last carries exactly the capacity, and with a capacity that is a multiple
    of the batch size no message but the last ends with a partial request. What is
    sent is still read from the state at send time: the message only names the
    buckets (and the key ranges of the cut ones). An export that runs out of time
    hands the buckets it did not finish back to the queue as a new message
    (`handbacks` + 1), with the counts of what it already did in them (`carried`), so
    each bucket's part result counts every outcome once.

    A message of the earlier format (`bucket` and `part_key`: one bucket) still reads,
    as `buckets=[bucket]`."""

    feed: str
    run_id: str
    buckets: list[int] = Field(min_length=1)
    manifest_key: str
    carried: dict[int, dict[str, int]] = Field(default_factory=dict)
    handbacks: int = 0
    slices: dict[int, KeyRange] = Field(default_factory=dict)  # bucket -> its keys here

    @model_validator(mode="before")
    @classmethod
    def _one_bucket(cls, data: Any) -> Any:
        if isinstance(data, dict) and "buckets" not in data and "bucket" in data:
            return {**data, "buckets": [data["bucket"]]}
        return data

    def describe(self) -> str:
        """`feed/run buckets 0-3,7` for logs and errors."""
        cut = "".join(f", {b}.{r.index}" for b, r in sorted(self.slices.items()))
        return f"{self.feed}/{self.run_id} bucket(s) {bucket_ranges(self.buckets)}" + (
            f" (slices{cut[1:]})" if cut else ""
        )


def bucket_ranges(buckets: list[int]) -> str:
    """`0-3,7,9-10` of a list of bucket numbers."""
    out: list[str] = []
    for b in sorted(buckets):
        if out and out[-1].split("-")[-1] == str(b - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{b}"
        else:
            out.append(str(b))
    return ",".join(out)


# The keys at which to cut a bucket: (bucket, positions in its pending items in key
# order) -> the key at each position (fewer when the bucket has fewer pending now).
SplitKeys = Callable[[int, list[int]], list[str]]


def pack_messages(
    feed: str,
    run_id: str,
    mkey: str,
    pending: dict[int, int],
    capacity: int,
    split: SplitKeys | None = None,
) -> list[ExportMessage]:
    """The messages of a run: its buckets with items to send, in bucket order, each
    message up to `capacity` pending items. `pending`: bucket -> items to send. With
    `split`, a bucket that does not fit is cut by key at the capacity (the rest goes
    on in the next message), so each message but the last has exactly `capacity`;
    without, a bucket is never cut (one larger than the capacity goes alone)."""
    # the plan: per message, (bucket, first position, end position or None: to the end)
    plan: list[list[tuple[int, int, int | None]]] = [[]]
    items = 0
    for bucket in sorted(pending):
        n = max(pending[bucket], 1)  # a bucket queued for a stuck item counts
        start = 0
        if split is not None:
            while n - start > capacity - items:
                if items == capacity:  # full: on in the next message
                    plan.append([])
                    items = 0
                    continue
                cut = start + capacity - items
                plan[-1].append((bucket, start, cut))
                plan.append([])
                items, start = 0, cut
        elif plan[-1] and items + n > capacity:
            plan.append([])
            items = 0
        if start < n:
            plan[-1].append((bucket, start, None))
            items += n - start
    if not plan[-1]:
        plan.pop()
    cuts: dict[int, list[int]] = {}
    for entries in plan:
        for bucket, _, end in entries:
            if end is not None:
                cuts.setdefault(bucket, []).append(end)
    keys = {b: split(b, at) for b, at in cuts.items()} if split is not None else {}
    messages: list[ExportMessage] = []
    index: dict[int, int] = {}
    for entries in plan:
        buckets, slices = [], {}
        for bucket, _, _ in entries:
            if bucket not in keys:
                buckets.append(bucket)
                continue
            i = index[bucket] = index.get(bucket, -1) + 1
            bounds = keys[bucket]
            if i > len(bounds):
                continue  # fewer pending now than when diffed: nothing left to cut
            low = bounds[i - 1] if i else None
            high = bounds[i] if i < len(bounds) else None
            buckets.append(bucket)
            slices[bucket] = KeyRange(index=i, low=low, high=high)
        if buckets:
            messages.append(
                ExportMessage(
                    feed=feed, run_id=run_id, buckets=buckets, manifest_key=mkey, slices=slices
                )
            )
    return messages


def export_units(messages: Sequence[ExportMessage]) -> int:
    """The part results the messages will write: one per bucket or slice."""
    return sum(len(m.buckets) for m in messages)


def manifest_key(feed: str, run_id: str) -> str:
    return f"snapshots/{feed}/{run_id}/manifest.json"


def part_key(feed: str, run_id: str, bucket: int) -> str:
    return f"snapshots/{feed}/{run_id}/part-{bucket:04d}.jsonl.gz"


def encode_line(item: EncodedItem) -> bytes:
    return b'{"k":%s,"h":"%s","i":%s}\n' % (orjson.dumps(item.key), item.hash.encode(), item.body)


# gzip level 1: parts are rewritten whenever a bucket changes (an hourly run with 1% of
# products changed touches every bucket), and level 1 compresses item JSON 2.4x faster
# than level 6 for a 1.4x larger object (measured: 229 vs 94 MB/s, ratio 9.0 vs 12.7).
PART_COMPRESSLEVEL = 1
# Delta parts a full part takes before the next change compacts them: its own number
# between MIN_DELTAS and MAX_DELTAS (`delta_limit`). One number for all would compact
# every bucket in the same run, the full parts of all of them having been written by
# the same run (a resync, or the compaction before): at 500k products, every ninth
# 1%-changed sync then took 21 s instead of 9 s (64 full parts read and rewritten).
MIN_DELTAS = 6
MAX_DELTAS = 12


def delta_limit(base_key: str) -> int:
    """How many delta parts the full part stored at `base_key` takes before the next
    change of its bucket compacts them: a number between MIN_DELTAS and MAX_DELTAS
    that a hash of the key picks (a key names its feed, run and bucket), so the
    buckets of one run compact in different later runs. When every bucket changes
    every run, about a tenth of them compact in each run: on average as often as one
    limit of 9 for all would have them compact, all in the same run."""
    spread = MAX_DELTAS - MIN_DELTAS + 1
    return MIN_DELTAS + zlib.crc32(base_key.encode("utf-8")) % spread


# Lines handed to gzip at a time: one `GzipFile.write` per line cost a CRC, a
# compressor call and its bookkeeping per line
WRITE_CHUNK = 256 * 1024


class PartWriter:
    """Writes one part to a local file (gzip); counts its items."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items = 0
        self._raw: IO[bytes] = open(path, "wb")  # noqa: SIM115
        self._gz = gzip.GzipFile(
            fileobj=self._raw, mode="wb", compresslevel=PART_COMPRESSLEVEL, mtime=0
        )
        self._lines: list[bytes] = []
        self._size = 0

    def write(self, item: EncodedItem) -> None:
        line = encode_line(item)
        self._lines.append(line)
        self._size += len(line)
        self.items += 1
        if self._size >= WRITE_CHUNK:
            self._flush()

    def _flush(self) -> None:
        self._gz.write(b"".join(self._lines))
        self._lines, self._size = [], 0

    def close(self) -> tuple[int, str]:
        """Finish the file; return (size in bytes, sha256 hex) of the stored object."""
        self._flush()
        self._gz.close()
        self._raw.close()
        digest = hashlib.sha256()
        with open(self.path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return self.path.stat().st_size, digest.hexdigest()


_HASH_AT = b',"h":"'
_ITEM_AT = b'","i":'


def split_line(line: bytes) -> tuple[str, str, bytes]:
    """(key, hash, item JSON) of one part line.

    Lines are written by `encode_line` only, so the item is cut out of the line
    without parsing it: in the key's JSON string every `"` is escaped, so the
    first `,"h":"` ends the key. Anything else is parsed as JSON."""
    h_at = line.find(_HASH_AT)
    i_at = line.find(_ITEM_AT, h_at)
    end = len(line) if line.endswith(b"}") else len(line.rstrip())
    if line.startswith(b'{"k":"') and 0 < h_at < i_at and line[end - 1 : end] == b"}":
        key: str = orjson.loads(line[5:h_at])
        return key, line[h_at + 6 : i_at].decode("ascii"), line[i_at + 6 : end - 1]
    rec = orjson.loads(line)
    return rec["k"], rec["h"], orjson.dumps(rec["i"])


# Compressed bytes inflated at a time (about 2 MB of lines at level 1's ratio of 9)
READ_CHUNK = 256 * 1024


def read_part(stream: IO[bytes]) -> Iterator[tuple[str, str, bytes]]:
    """Yield (key, hash, item JSON) for each line of a stored part. The object is
    inflated a chunk at a time and each chunk cut into lines at once (not read
    line by line through a GzipFile)."""
    tail = b""
    for data in _inflate(stream):
        lines = (tail + data).split(b"\n") if tail else data.split(b"\n")
        tail = lines.pop()  # the unfinished last line (b"" after a newline)
        for line in lines:
            if line and not line.isspace():
                yield split_line(line)
    if tail and not tail.isspace():
        yield split_line(tail)


def _inflate(stream: IO[bytes]) -> Iterator[bytes]:
    """The content of a gzip object (members one after another, zero padding between
    them ignored, as `gzip` reads it), as it is inflated. A truncated object raises
    EOFError, a corrupt one zlib.error (its CRC is checked)."""
    inflater = zlib.decompressobj(wbits=31)
    started = False  # a member is being inflated
    after = False  # a member ended
    while chunk := stream.read(READ_CHUNK):
        while chunk:
            if not started:
                chunk = chunk.lstrip(b"\x00") if after else chunk
                if not chunk:
                    break
                started = True
            data = inflater.decompress(chunk)
            if data:
                yield data
            if not inflater.eof:
                break
            chunk, started, after = inflater.unused_data, False, True
            inflater = zlib.decompressobj(wbits=31)
    if started:
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")


_REMOVED = b"null"


def removal(key: str) -> EncodedItem:
    """A delta part's line for an item deleted since the full part: `"h":"","i":null`."""
    return EncodedItem(key, "", "", _REMOVED)


class _Content(Protocol):  # a PartRef (state) or a PartInfo (manifest)
    key: str

    @property
    def deltas(self) -> Sequence[Any]: ...


def read_bucket_items(blobs: BlobStore, part: _Content) -> Iterator[tuple[str, str, bytes]]:
    """(key, hash, item JSON) of a bucket's snapshot content (a state's `part`, or a
    manifest's part), one line per key: a delta part's line wins over the full part's
    and older deltas', and a delta's removal line takes the item out. An exporter
    still keeps only the lines whose hash its state records (the state may be newer
    than the content it read)."""
    newer: dict[str, tuple[str, bytes]] = {}
    for delta in reversed(part.deltas):  # newest first: the first line of a key wins
        with blobs.open(delta.key) as stream:
            for key, h, body in read_part(stream):
                newer.setdefault(key, (h, body))
    if part.key:
        with blobs.open(part.key) as stream:
            for key, h, body in read_part(stream):
                if key not in newer:
                    yield key, h, body
    for key, (h, body) in newer.items():
        if h:  # not a removal
            yield key, h, body


def read_wanted_items(
    blobs: BlobStore, part: _Content, wanted: dict[str, str]
) -> Iterator[tuple[str, str, bytes]]:
    """(key, hash, item JSON) of the `wanted` items (key -> hash) whose current line in
    the bucket's content (as `read_bucket_items` resolves it) has that hash. Reads the
    delta parts newest first and stops as soon as every wanted key has met its newest
    line: an export of a few changed items reads the small delta that holds them, not
    the whole full part under it. A key whose newest line has another hash, or is a
    removal, is not yielded (its content for that hash is gone)."""
    left = dict(wanted)
    for delta in reversed(part.deltas):
        if not left:
            return
        with blobs.open(delta.key) as stream:
            for key, h, body in read_part(stream):
                want = left.pop(key, None)
                if want is not None and h == want:
                    yield key, h, body
    if left and part.key:
        with blobs.open(part.key) as stream:
            for key, h, body in read_part(stream):
                want = left.pop(key, None)
                if want is not None and h == want:
                    yield key, h, body
                    if not left:
                        return
