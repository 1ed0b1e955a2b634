"""Pass 1 across cores: the CSV in byte ranges, one worker process each.

A row may span lines (a quoted cell with newlines), so a range may only start
where a row starts. Outside a quoted cell the file has an even number of `"`
before it (a quote inside a quoted cell is doubled), so a pre-scan counts the
quotes and newlines of the file (`bytes.count`, `stream.newlines`; in threads, one
chunk each) and puts each boundary after the first newline past its target at which
the count is even. Each worker parses its range as the serial pass 1 would (line numbers from
the newlines before it) into its own partition files, and reads past its end to
finish its last row: the boundary holds only if that row ends exactly where the
next range starts. A quote inside an unquoted cell (`5" screen`) breaks the
count; then some worker's last row ends elsewhere, and the whole pass 1 is read
serially instead (as it is when a worker fails, or the parser gives up or the
stream breaks in any range: the serial read reports those exactly). A verified
read appends every partition's range files in range order, so each SKU's frames
are in file order, as the serial pass 1 writes them.

The bytes come from the local file (seek) or, for `s3://`, Range GETs of a
presigned URL pinned to the object's ETag (`If-Match`: a new upload midway fails
the read into the serial fallback, which reads the new object whole).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from catalog_sync.errors import SourceError
from catalog_sync.infra.calls import WorkerError, call_in_workers
from catalog_sync.records import ReadReport, Rejected, SourceIssue
from catalog_sync.sources.magento_csv.columns import READ_BUFFER, _Columns
from catalog_sync.sources.magento_csv.partitions import _Spill
from catalog_sync.sources.magento_csv.stream import _Lines, _StreamRaw, newlines

if TYPE_CHECKING:
    from catalog_sync.sources.magento_csv.source import MagentoCsvSource

SCAN_BLOCK = 8 << 20
PRESIGN_SECONDS = 3600


@dataclass(frozen=True)
class Origin:
    """Where a range's bytes come from (picklable): a local path, or a presigned
    S3 GET URL and the object's ETag."""

    path: str | None = None
    url: str | None = None
    etag: str | None = None

    def open_at(self, start: int) -> BinaryIO:
        """The file from byte `start` to its end (read only as far as needed)."""
        if self.path is not None:
            f = open(self.path, "rb", buffering=READ_BUFFER)  # noqa: SIM115
            f.seek(start)
            return f
        raw = _StreamRaw(self._get(f"bytes={start}-"))
        return io.BufferedReader(raw, buffer_size=READ_BUFFER)

    def blocks(self, lo: int, hi: int) -> Iterator[bytes]:
        """The bytes `lo..hi` in blocks of at most `SCAN_BLOCK`."""
        if self.path is not None:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                while lo < hi:
                    block = os.pread(fd, min(SCAN_BLOCK, hi - lo), lo)
                    if not block:
                        raise SourceError(f"{self.path}: shorter than its size")
                    lo += len(block)
                    yield block
            finally:
                os.close(fd)
            return
        body = self._get(f"bytes={lo}-{hi - 1}")
        try:
            while block := body.read(SCAN_BLOCK):
                yield block
        finally:
            body.close()

    def _get(self, byte_range: str) -> Any:
        import urllib3

        assert self.url is not None
        headers = {"Range": byte_range}
        if self.etag:
            headers["If-Match"] = self.etag
        resp = _pool().request("GET", self.url, headers=headers, preload_content=False)
        if resp.status != 206:
            resp.release_conn()
            raise SourceError(f"range GET {byte_range}: HTTP {resp.status}")
        assert isinstance(resp, urllib3.BaseHTTPResponse)
        return resp


_POOL: Any = None


def _pool() -> Any:
    global _POOL
    if _POOL is None:
        import urllib3

        _POOL = urllib3.PoolManager(maxsize=8, retries=urllib3.Retry(3, redirect=False))
    return _POOL


def s3_origin(client: Any, bucket: str, key: str, etag: str | None) -> Origin:
    url = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=PRESIGN_SECONDS
    )
    return Origin(url=url, etag=etag)


@dataclass
class _Chunk:
    """A pre-scanned chunk: its quotes and newlines, and per parity (0, 1) the
    first newline with that many quotes before it in the chunk (mod 2): (offset
    after it, newlines up to and with it)."""

    quotes: int = 0
    newlines: int = 0
    first: list[tuple[int, int] | None] = field(default_factory=lambda: [None, None])


def _scan(origin: Origin, lo: int, hi: int, heads: bool, counts: bool) -> _Chunk:
    """`heads`: find the first newlines of each parity; `counts`: count the whole
    chunk (the last chunk's counts are never needed, the first's heads neither)."""
    chunk = _Chunk()
    at = lo
    for block in origin.blocks(lo, hi):
        if heads and (chunk.first[0] is None or chunk.first[1] is None):
            _first_newlines(block, at, chunk)
        elif not counts:
            break
        chunk.quotes += block.count(b'"')
        chunk.newlines += newlines(block)
        at += len(block)
    return chunk


def _first_newlines(block: bytes, at: int, chunk: _Chunk) -> None:
    """Fill `chunk.first` from `block` (at byte `at`; `chunk` counts what came before)."""
    i, quotes, newlines = 0, chunk.quotes, chunk.newlines
    while chunk.first[0] is None or chunk.first[1] is None:
        j = block.find(b"\n", i)
        if j < 0:
            return
        quotes += block.count(b'"', i, j)
        newlines += 1
        if chunk.first[quotes % 2] is None:
            chunk.first[quotes % 2] = (at + j + 1, newlines)
        i = j + 1


@dataclass(frozen=True)
class Range:
    start: int  # byte offset of its first row
    lines: int  # lines before it


def plan(origin: Origin, data: int, lines: int, size: int, n: int) -> list[Range]:
    """Up to `n` ranges of the bytes `data..size` (`lines` lines before `data`),
    each starting at a newline with an even number of quotes before it."""
    targets = [data + (size - data) * i // n for i in range(n)] + [size]

    def scan(i: int) -> _Chunk:
        return _scan(origin, targets[i], targets[i + 1], i > 0, i < n - 1)

    with ThreadPoolExecutor(n) as pool:
        chunks = list(pool.map(scan, range(n)))
    ranges = [Range(data, lines)]
    quotes, newlines = 0, lines
    for i in range(1, n):
        quotes += chunks[i - 1].quotes
        newlines += chunks[i - 1].newlines
        first = chunks[i].first[quotes % 2]
        if first is not None and first[0] < size:
            ranges.append(Range(first[0], newlines + first[1]))
    return ranges


@dataclass
class _RangeJob:
    origin: Origin
    uri: str
    header: list[str]
    store_views: frozenset[str] | None
    wanted: frozenset[str] | None
    parts: int
    tmp: str
    index: int
    at: Range
    stop: int | None  # where the next range starts (None: the last range)


@dataclass
class _RangeOut:
    rejected: list[Rejected]
    issues: list[SourceIssue]
    rows: int
    views: list[str]
    end: int  # the byte offset where its last row ended
    complete: bool
    broken: bool  # the parser gave up, or the stream broke: read serially


def read_range(job: _RangeJob) -> _RangeOut:
    """A worker: pass 1 over one byte range into its own partition files."""
    from catalog_sync.sources.magento_csv.source import MagentoCsvSource

    src = MagentoCsvSource(job.uri, store_views=job.store_views)
    src._report = ReadReport(complete=True)
    issues: list[SourceIssue] = []
    src._collect = issues  # replayed in the parent, in range order
    spill = _Spill(job.parts, Path(job.tmp), f".r{job.index}")
    stream = job.origin.open_at(job.at.start)
    stop = None if job.stop is None else job.stop - job.at.start
    try:
        lines = _Lines(stream, job.at.lines)
        reader = csv.reader(lines.fast(stop))
        out = src._rows(reader, lines, _Columns(job.header), spill, job.wanted, job.at.lines, stop)
    finally:
        stream.close()
        spill.finish()
    cut = lines.error is not None and (stop is None or out.end < stop)
    return _RangeOut(
        out.rejected,
        issues,
        out.rows,
        list(out.views),
        job.at.start + out.end,
        src._report.complete,
        out.failed or cut,
    )


def read_ranges(
    source: MagentoCsvSource,
    origin: Origin,
    columns: _Columns,
    spill: _Spill,
    wanted: frozenset[str] | None,
    ranges: list[Range],
) -> list[Rejected] | None:
    """Pass 1 by `ranges` in worker processes into `spill`; its rejections, or
    None when a boundary does not hold (or a range broke): nothing is kept then."""
    assert spill.tmp is not None
    stops: list[int | None] = [r.start for r in ranges[1:]] + [None]
    jobs = [
        (
            _RangeJob(
                origin, source.uri, columns.header, source.store_views, wanted,
                spill.parts, str(spill.tmp), i, r, stops[i],
            ),
        )
        for i, r in enumerate(ranges)
    ]  # fmt: skip
    try:
        outs: list[_RangeOut] = call_in_workers(read_range, jobs)
    except WorkerError:
        outs = []
    if not outs or any(
        out.broken or (stop is not None and out.end != stop)
        for out, stop in zip(outs, stops, strict=True)
    ):
        for path in spill.tmp.glob("part-*.bin.r*"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return None
    spill.adopt([f".r{i}" for i in range(len(ranges))])
    report = source._report
    rejected: list[Rejected] = []
    views: set[str] = set()
    for out in outs:
        rejected.extend(out.rejected)
        for issue in out.issues:
            source._issue(issue)
        report.complete = report.complete and out.complete
        report.rows += out.rows
        views.update(out.views)
    report.store_views = sorted(views)
    return rejected
