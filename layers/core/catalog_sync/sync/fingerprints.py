"""Record fingerprints: an unchanged source record skips build, encode and hash.

A source that can (the export CSV) gives each record a fingerprint of its raw
rows: all rows of the SKU, every store view, and the parent links other rows give
it (`sources.magento_csv.partitions.record_fingerprint`). After a run, each feed
stores the fingerprints of the records it built cleanly, in one object per feed
and run (`fingerprints/{feed}/{run_id}.bin`, pointed at by the feed meta). The
next run hands them to the source: a record whose fingerprint is there is not
built at all; its group's items stand as the state and the previous snapshot part
have them (the diff takes them as read and unchanged).

What a builder makes from the same rows depends on more than the rows; all of it
goes into the object's context digest, and a digest that differs voids every
fingerprint of the object: the feed and its builder version (`FeedSpec.version`),
the store views, the enabled feeds, the target's options, the source's own
mapping version and the file's header. Content that changes with the clock (a
special price window that opens or closes) is stored with the instant it changes
(`sync.windows.next_change`): after it, the record is built again.

Never stored: rejected records, records built with warnings (they must be
reported again), aggregate feeds (an item is the union of many records), partial
reads (by ids, incremental: they cannot say which old fingerprints went stale).
A resync or a cleanup builds everything and stores what it built. The meta's
pointer is cleared under the lease before a run writes its first bucket and set
again when the run completes, so a run that dies half way leaves no fingerprints
that disagree with the state.
"""

from __future__ import annotations

import math
import threading
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import orjson
import xxhash

from catalog_sync.errors import NotFoundError
from catalog_sync.feeds.spec import BuildContext, FeedSpec
from catalog_sync.observability import get_logger
from catalog_sync.ports import BlobStore

log = get_logger(__name__)

FORMAT = 1
_MAGIC = b"catalog-sync fingerprints\n"
NEVER = math.inf  # `until` of a record whose items do not depend on the clock


def fingerprint_key(feed: str, run_id: str) -> str:
    return f"fingerprints/{feed}/{run_id}.bin"


def context_digest(spec: FeedSpec, ctx: BuildContext, source_context: str) -> str:
    """What, besides the rows, decides a feed's items: a change voids the fingerprints."""
    parts = (
        FORMAT,
        spec.name,
        spec.version,
        tuple(tuple(v) for v in ctx.store_views),
        tuple(sorted(ctx.feeds)),
        repr(ctx.aco),
        source_context,
    )
    return xxhash.xxh3_128_hexdigest(repr(parts).encode())


class Fingerprints:
    """A previous run's fingerprints of one feed (read only; picklable)."""

    __slots__ = ("stable", "timed")

    def __init__(self, stable: array[int], timed: dict[int, float]) -> None:
        self.stable = stable  # sorted
        self.timed = timed  # fingerprint -> epoch seconds its items change at

    def __getstate__(self) -> tuple[array[int], dict[int, float]]:
        return self.stable, self.timed

    def __setstate__(self, state: tuple[array[int], dict[int, float]]) -> None:
        self.stable, self.timed = state

    def __len__(self) -> int:
        return len(self.stable) + len(self.timed)

    def until(self, fp: int, now: float) -> float | None:
        """Until when the record with fingerprint `fp` is unchanged (None: build it)."""
        stable = self.stable
        i = bisect_left(stable, fp)
        if i < len(stable) and stable[i] == fp:
            return NEVER
        until = self.timed.get(fp)
        return until if until is not None and now < until else None


class FingerprintSet:
    """The fingerprints a run collects for one feed."""

    __slots__ = ("changes", "stable", "timed")

    def __init__(self) -> None:
        self.stable: array[int] = array("Q")
        self.timed: dict[int, float] = {}
        self.changes = 0  # adds so far (`Encoding` tells a set changed since by it)

    def __len__(self) -> int:
        return len(self.stable) + len(self.timed)

    def add(self, fp: int, until: float) -> None:
        self.changes += 1
        if until == NEVER:
            self.stable.append(fp)
        else:
            self.timed[fp] = until

    def add_many(self, fps: list[int], untils: list[float]) -> None:
        """`add(fp, until)` for each pair."""
        self.changes += 1
        if all(u == NEVER for u in untils):
            self.stable.extend(fps)
            return
        for fp, until in zip(fps, untils, strict=True):
            self.add(fp, until)

    def update(self, other: FingerprintSet) -> None:
        self.changes += 1
        self.stable.extend(other.stable)
        self.timed.update(other.timed)

    def mark(self) -> tuple[int, ...]:
        """What `Encoding` compares: the set's arrays, their sizes and its adds."""
        return id(self.stable), len(self.stable), id(self.timed), len(self.timed), self.changes

    def to_bytes(self, digest: str) -> bytes:
        stable = array("Q", sorted(self.stable))  # one per record: no duplicates
        timed = sorted(self.timed.items())
        head = {"format": FORMAT, "digest": digest, "stable": len(stable), "timed": len(timed)}
        if stable.itemsize != 8:  # pragma: no cover - every supported platform
            raise RuntimeError("array('Q') is not 64-bit here")
        keys = array("Q", (k for k, _ in timed))
        untils = array("d", (u for _, u in timed))
        for a in (stable, keys, untils):
            if a.itemsize > 1 and _BIG_ENDIAN:  # pragma: no cover - stored little-endian
                a.byteswap()
        return b"".join(
            (_MAGIC, orjson.dumps(head), b"\n", stable.tobytes(), keys.tobytes(), untils.tobytes())
        )


class Encoding:
    """`found.to_bytes(digest)` worked out on a thread of its own from when the read is
    complete, while the diff runs: sorting half a million fingerprints holds the GIL
    for about 0.2 s, which the diff's waits for DynamoDB and S3 leave free, where it was
    the larger part of a run's finish. `result` gives those bytes, or encodes the set
    again if anything changed it since (nothing does: a read adds its fingerprints
    before the diff), so what is published is always the set as it is then."""

    def __init__(self, found: FingerprintSet, digest: str) -> None:
        self._found, self._digest, self._mark = found, digest, found.mark()
        self._data: bytes | None = None
        self._thread = threading.Thread(target=self._encode, name="fingerprints-encode")
        self._thread.daemon = True  # never holds a process up: `result` joins it
        self._thread.start()

    def _encode(self) -> None:
        try:
            self._data = self._found.to_bytes(self._digest)
        except Exception:  # encoded again in `result`, where an error is raised
            log.warning("fingerprints: encoding ahead failed", exc_info=True)

    def result(self, found: FingerprintSet, digest: str) -> bytes:
        self._thread.join()
        data = self._data
        if data is None or found is not self._found or digest != self._digest:
            return found.to_bytes(digest)
        if found.mark() != self._mark:
            return found.to_bytes(digest)
        return data


_BIG_ENDIAN = array("H", [1]).tobytes() == b"\x00\x01"


def decode(data: bytes, digest: str) -> Fingerprints | None:
    """The fingerprints in `data` if they were made in the context `digest`."""
    if not data.startswith(_MAGIC):
        return None
    end = data.index(b"\n", len(_MAGIC))
    head: dict[str, Any] = orjson.loads(data[len(_MAGIC) : end])
    if head.get("format") != FORMAT or head.get("digest") != digest:
        return None
    pos = end + 1
    n, m = int(head["stable"]), int(head["timed"])
    stable, keys, untils = array("Q"), array("Q"), array("d")
    stable.frombytes(data[pos : pos + 8 * n])
    keys.frombytes(data[pos + 8 * n : pos + 8 * (n + m)])
    untils.frombytes(data[pos + 8 * (n + m) : pos + 8 * (n + 2 * m)])
    if _BIG_ENDIAN:  # pragma: no cover
        for a in (stable, keys, untils):
            a.byteswap()
    return Fingerprints(stable, dict(zip(keys, untils, strict=True)))


def load(blobs: BlobStore, key: str | None, digest: str) -> Fingerprints | None:
    """A feed's stored fingerprints, or None (none stored, another context, unreadable)."""
    if not key:
        return None
    try:
        return decode(blobs.get_bytes(key), digest)
    except NotFoundError:
        return None
    except Exception:  # a damaged object costs a full build, never a wrong skip
        log.warning("fingerprints %s unreadable: building every record", key, exc_info=True)
        return None


def skipper(priors: Iterable[Fingerprints | None], now: float) -> Any:
    """`skip(fp)` for a source: until when the record is unchanged for every feed
    being built (None: build it). None when some feed has no fingerprints."""
    sets = list(priors)
    if not sets or any(p is None for p in sets):
        return _never_skip
    if len(sets) == 1:
        only = sets[0]
        assert only is not None
        return lambda fp: only.until(fp, now)

    def skip(fp: int) -> float | None:
        least = NEVER
        for p in sets:
            assert p is not None
            until = p.until(fp, now)
            if until is None:
                return None
            least = min(least, until)
        return least

    return skip


def _never_skip(fp: int) -> float | None:
    return None


class _Collecting(Protocol):  # sync.compile.Collector (which imports this module)
    spec: FeedSpec
    prior: Fingerprints | None
    found: FingerprintSet | None
    digest: str


def arm(
    collectors: Sequence[_Collecting],
    keys: Sequence[str | None],
    ctx: BuildContext,
    source_context: str | None,
    *,
    use: bool,
    blobs: BlobStore,
) -> Callable[[int], float | None] | None:
    """Make each non-aggregate collector collect this read's fingerprints and, when
    `use`, know the previous run's (`keys`: each feed's stored object); return the
    source's `skip`. None: the source gives no fingerprints (nothing is collected)."""
    if source_context is None:
        return None
    priors: list[Fingerprints | None] = []
    for c, key in zip(collectors, keys, strict=True):
        if c.spec.aggregate:
            priors.append(None)
            continue
        c.digest = context_digest(c.spec, ctx, source_context)
        c.found = FingerprintSet()
        c.prior = load(blobs, key, c.digest) if use else None
        priors.append(c.prior)
    return skipper(priors, ctx.now.timestamp())


def publish(
    blobs: BlobStore,
    feed: str,
    run_id: str,
    found: FingerprintSet,
    digest: str,
    encoding: Encoding | None = None,
) -> str:
    """Store a completed run's fingerprints (`encoding`: begun ahead); delete the feed's
    older objects (best effort: runs hold the feed's lease, so nothing reads them any
    more)."""
    key = fingerprint_key(feed, run_id)
    data = found.to_bytes(digest) if encoding is None else encoding.result(found, digest)
    blobs.put_bytes(key, data)
    try:
        old = [k for k in blobs.list_keys(f"fingerprints/{feed}/") if k != key]
        if old:
            blobs.delete_keys(old)
    except Exception:
        log.warning("could not delete old fingerprints of %s", feed, exc_info=True)
    return key
