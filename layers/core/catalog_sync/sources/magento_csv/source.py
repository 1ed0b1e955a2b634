"""`MagentoCsvSource`: reads Magento's product export CSV (a local file or S3 object).

Two passes keep memory flat however large the file is:

1. stream the CSV once (never the whole file in memory) and spill each row into
   one of N partition files on local disk, chosen by a hash of the lower-cased SKU,
   together with "parent link" records (child SKU -> configurable parent, from the
   parent's `configurable_variations`) and per-row problems; N grows with the
   file size (about one partition per `partition_bytes` of CSV). A small file stays
   in memory (one partition). A large one is read in byte ranges by `workers`
   processes (`ranges`), with exactly the serial read's result.
2. read one partition at a time, group its rows by SKU (case-insensitive, as
   Magento compares SKUs; rows of a product need not be contiguous, children may
   come before their parent) and yield a `catalog.CatalogProduct` per SKU, or a
   `records.Rejected` naming the line, SKU and field of every problem.

Choices (see the report / decision log):
- A bare root category (`Default Category`) is no category: paths leave the root out.
- A huge cell (a 10 MB description) is valid CSV and is accepted.
- A row whose cell count differs from the header's (an unbalanced quote, a cut
  record) rejects its product and makes the read incomplete: rows may have been
  swallowed, so no deletion may be derived from this read.
- A row without a status is enabled; without `product_type`, `simple`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import marshal
import math
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from catalog_sync.catalog import (
    CatalogProduct,
)
from catalog_sync.errors import SourceError
from catalog_sync.records import ReadReport, Rejected, SourceIssue
from catalog_sync.sources.inventory import StockDef
from catalog_sync.sources.magento_csv import digest, ranges
from catalog_sync.sources.magento_csv.columns import (
    _BUNDLE_LINK,
    _ISSUE,
    _JOINED,
    _LINK,
    _ROW,
    MARSHAL_VERSION,
    MAX_PARTITIONS,
    MAX_WARNINGS,
    PARALLEL_BYTES,
    PARTITION_BYTES,
    READ_BUFFER,
    UNKNOWN_SIZE_PARTITIONS,
    _Columns,
)
from catalog_sync.sources.magento_csv.partitions import CsvPartition, CsvSplit, _Spill
from catalog_sync.sources.magento_csv.stock_sources import spill_stock_sources
from catalog_sync.sources.magento_csv.stream import (
    _bad_field,
    _Lines,
    _printable,
    _StreamRaw,
    _variation_children,
)

if TYPE_CHECKING:  # ports imports the sync models (pydantic): range workers never need them
    from catalog_sync.ports import SourceContent


class _MissingError(SourceError):
    """The file (or S3 object) does not exist."""


@dataclass
class RowsRead:
    """What `MagentoCsvSource._rows` read: pass 1's rejections, the rows, the store
    views seen, where the rows ended (bytes of the stream) and whether the parser
    gave up (a `csv.Error`)."""

    rejected: list[Rejected] = field(default_factory=list)
    rows: int = 0
    views: dict[str, None] = field(default_factory=dict)
    end: int = 0
    failed: bool = False


class MagentoCsvSource:
    """`ports.CatalogSource` over a Magento product export CSV.

    `uri`: a local path or `s3://bucket/key` (needs `s3_client`; the body is
    streamed). `workdir`: where the temporary partition files go (a temporary
    directory under it, removed after the read). `store_views`: if given, rows of
    other store views are skipped (their codes still show in the report).
    `workers`: processes for pass 1 of a file of `parallel_bytes` or more (`ranges`).
    """

    def __init__(
        self,
        uri: str,
        *,
        s3_client: Any = None,
        workdir: Path | None = None,
        store_views: Collection[str] | None = None,
        partition_bytes: int = PARTITION_BYTES,
        stock_sources: str | None = None,
        stocks: Sequence[StockDef] = (),
        stock_sources_optional: bool = False,
        workers: int = 1,
        parallel_bytes: int = PARALLEL_BYTES,
    ) -> None:
        self.uri = uri
        self.stock_sources = stock_sources  # the "Stock Sources" export (MSI), path or s3://
        self.stocks = tuple(stocks)  # the stock layout (INVENTORY_STOCKS)
        self.stock_sources_optional = stock_sources_optional  # a missing file: no MSI
        self.s3_client = s3_client
        self.workdir = workdir
        self.store_views = frozenset(store_views) if store_views is not None else None
        self.partition_bytes = max(1, partition_bytes)
        self.workers = max(1, workers)
        self.parallel_bytes = parallel_bytes
        self.ranges = 0  # byte ranges pass 1 was read in (1: serially)
        self._report = ReadReport(complete=False)
        self._warnings = 0
        self._etag: str | None = None
        self._columns: _Columns | None = None
        self._collect: list[SourceIssue] | None = None  # a range worker's issues

    def describe(self) -> str:
        return f"magento-csv:{self.uri}"

    def report(self) -> ReadReport:
        """How the last read went (valid once `read` is exhausted)."""
        return self._report

    def content(self) -> SourceContent | None:
        """The bytes this source reads, streamed once and digested (`digest.py`)."""
        return digest.content(self)

    def identity(self) -> tuple[str, ...] | None:
        return digest.identity(self)

    # -- opening -----------------------------------------------------------

    def _open(self, uri: str | None = None) -> tuple[BinaryIO, int | None]:
        uri = uri or self.uri
        if uri.startswith("s3://"):
            return self._open_s3(uri)
        path = Path(uri[7:] if uri.startswith("file://") else uri)
        try:
            f = open(path, "rb", buffering=READ_BUFFER)  # noqa: SIM115
            return f, path.stat().st_size
        except FileNotFoundError as exc:
            raise _MissingError(f"cannot open catalog file {path}: {exc.strerror}") from exc
        except OSError as exc:
            raise SourceError(f"cannot open catalog file {path}: {exc.strerror or exc}") from exc

    def _open_s3(self, uri: str) -> tuple[BinaryIO, int | None]:
        from botocore.exceptions import BotoCoreError, ClientError

        if self.s3_client is None:
            raise SourceError(f"{uri}: an S3 source needs an s3 client")
        bucket, _, key = uri[5:].partition("/")
        if not bucket or not key:
            raise SourceError(f"{uri}: expected s3://bucket/key")
        try:
            resp = self.s3_client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            kind = _MissingError if err.get("Code") in ("NoSuchKey", "404") else SourceError
            raise kind(
                f"cannot read {uri}: {err.get('Code', 'error')} {err.get('Message', '')}".strip()
            ) from exc
        except BotoCoreError as exc:
            raise SourceError(f"cannot read {uri}: {exc}") from exc
        size = resp.get("ContentLength")
        self._etag = resp.get("ETag")
        raw = _StreamRaw(resp["Body"])
        return io.BufferedReader(raw, buffer_size=READ_BUFFER), size

    # -- reading -----------------------------------------------------------

    def read(self, *, skus: Collection[str] | None = None) -> Iterator[CatalogProduct | Rejected]:
        with self.split(skus=skus) as split:
            yield from split.rejected
            for part in split.partitions:
                yield from part.records(self._issue)
                self._report.records += part.built

    @contextlib.contextmanager
    def split(self, *, skus: Collection[str] | None = None) -> Iterator[CsvSplit]:
        """Pass 1 (stream the file into partitions) and the partitions for pass 2,
        which are independent of each other: each may be built in another process
        (file partitions pickle as their path). The partition files live until the
        context ends. Records built elsewhere are counted with `CsvSplit.merge`."""
        self._report = ReadReport(complete=True)
        self._warnings = 0
        wanted = frozenset(s.strip().lower() for s in skus) if skus is not None else None
        stream, size = self._open()
        with contextlib.ExitStack() as stack:
            stack.callback(stream.close)
            parts = 1
            if size is None:
                parts = UNKNOWN_SIZE_PARTITIONS
            elif size > self.partition_bytes:
                parts = min(MAX_PARTITIONS, math.ceil(size / self.partition_bytes))
            tmp: Path | None = None
            if parts > 1:
                tmp = Path(
                    stack.enter_context(
                        tempfile.TemporaryDirectory(prefix="magento-csv-", dir=self.workdir)
                    )
                )
            spill = _Spill(parts, tmp)
            stack.callback(spill.close)
            rejected = self._ranges(stream, size, parts, spill, wanted)
            if rejected is None:
                stream = self._reopen(stream, stack)
                rejected = []
                columns: _Columns | None = None
                for entry in self._pass1(stream, spill, wanted):
                    if isinstance(entry, _Columns):
                        columns = entry
                    else:
                        rejected.append(entry)
            else:
                columns = self._columns
            stream.close()
            stocks = self._spill_stock_sources(spill, wanted)
            spill.finish()
            if columns is None:  # pragma: no cover - pass 1 raises first
                raise SourceError(f"{self.uri}: no header")
            partitions = [
                CsvPartition(columns.header, wanted, spill.path(part), spill.take_memory(), stocks)
                for part in range(parts)
            ]
            yield CsvSplit(rejected, partitions, self)

    def _ranges(
        self,
        stream: BinaryIO,
        size: int | None,
        parts: int,
        spill: _Spill,
        wanted: frozenset[str] | None,
    ) -> list[Rejected] | None:
        """Pass 1 in byte ranges (`ranges`) when the file is large enough and its
        size is known; its rejections, or None: read it serially."""
        self.ranges = 1
        self._columns = None
        if self.workers < 2 or size is None or size < self.parallel_bytes or parts < 2:
            return None
        lines = _Lines(stream)
        reader = csv.reader(lines)
        self._columns = _Columns(self._header(reader, lines))
        origin = self._origin()
        if lines.error is not None or origin is None:
            return None
        plan = ranges.plan(origin, lines.pos, lines.line_no, size, self.workers)
        if len(plan) < 2:
            return None
        rejected = ranges.read_ranges(self, origin, self._columns, spill, wanted, plan)
        if rejected is not None:
            self.ranges = len(plan)
        return rejected

    def _origin(self) -> ranges.Origin | None:
        if not self.uri.startswith("s3://"):
            return ranges.Origin(path=self.uri.removeprefix("file://"))
        bucket, _, key = self.uri[5:].partition("/")
        return ranges.s3_origin(self.s3_client, bucket, key, self._etag)

    def _reopen(self, stream: BinaryIO, stack: contextlib.ExitStack) -> BinaryIO:
        """The stream from its start for the serial pass 1 (if `_ranges` read from it)."""
        if self._columns is None:
            return stream
        stream.close()
        stream, _size = self._open()
        stack.callback(stream.close)
        self._report = ReadReport(complete=True)
        self._warnings = 0
        return stream

    def _spill_stock_sources(
        self, spill: _Spill, wanted: frozenset[str] | None
    ) -> tuple[StockDef, ...]:
        """The Stock Sources file into the partitions; the stocks to build (none
        without the file)."""
        if not self.stock_sources:
            return ()
        try:
            stream, _size = self._open(self.stock_sources)
        except _MissingError:
            if self.stock_sources_optional:
                return ()
            raise
        with stream:
            codes = spill_stock_sources(stream, self.stock_sources, spill, wanted, self._issue)
        return self.stocks or (StockDef("1", tuple(codes), ("*",)),)

    def _issue(self, issue: SourceIssue) -> None:
        """A read-level issue (structure) or a warning, kept in the report."""
        if self._collect is not None:
            self._collect.append(issue)
            return
        if issue.severity == "warning":
            self._warnings += 1
            if self._warnings > MAX_WARNINGS:
                return
            if self._warnings == MAX_WARNINGS:
                issue = SourceIssue(f"{issue}; further warnings are not listed", severity="warning")
        self._report.issues.append(issue)

    def _pass1(
        self, stream: BinaryIO, spill: _Spill, wanted: frozenset[str] | None
    ) -> Iterator[_Columns | Rejected]:
        """The serial pass 1: the header, then every row of the file."""
        lines = _Lines(stream)
        reader = csv.reader(lines.fast())
        columns = _Columns(self._header(reader, lines))
        yield columns
        out = self._rows(reader, lines, columns, spill, wanted, 0, None)
        yield from out.rejected
        self._end_of_pass1(lines, out.rows, out.views)

    def _rows(
        self, reader: Any, lines: _Lines, columns: _Columns, spill: _Spill,
        wanted: frozenset[str] | None, base: int, stop: int | None,
    ) -> RowsRead:  # fmt: skip
        """Spill the rows of `reader` (past the header, or from a byte range's start:
        `base` lines before it) until the first row that starts at byte `stop` or
        later (of the stream; None: to its end)."""
        header, ncols, index = columns.header, len(columns.header), columns.index
        sku_i, sv_i = index["sku"], index.get("store_view_code", -1)
        cv_i, bv_i = index.get("configurable_variations", -1), index.get("bundle_values", -1)
        out = RowsRead()
        views, rejected = out.views, out.rejected
        allowed_views = self.store_views
        rows = 0
        limit = sys.maxsize if stop is None else stop
        end = base + reader.line_num
        at = lines.pos  # where the row read next starts
        bad, nul = lines.bad_lines, lines.nul_lines
        dumps = marshal.dumps
        add = spill.add
        try:
            for row in reader:
                if at >= limit:
                    break  # this row starts the next range
                at = lines.pos
                start = end + 1
                end = base + reader.line_num
                n = len(row)
                if n == 0:
                    continue
                rows += 1
                sku = row[sku_i].strip() if n > sku_i else ""
                problem: SourceIssue | None = None
                if n != ncols:
                    problem = self._shape_problem(sku, n, ncols, start, end, lines)
                if bad and bad[-1] >= start:
                    problem, sku = _utf8_problem(row, header, start, sku)
                if not sku:
                    if problem is None:
                        if n == 1 and not row[0].strip():
                            rows -= 1  # a blank line
                            continue
                        problem = SourceIssue("the row has no SKU", line=start, field="sku")
                    rejected.append(Rejected(None, [problem]))
                    continue
                key = sku.lower()
                for i, kind in ((cv_i, _LINK), (bv_i, _BUNDLE_LINK)):  # children -> parents
                    if i >= 0 and n > i and row[i]:
                        _add_links(add, kind, row[i], sku, start, wanted)
                if wanted is not None and key not in wanted:
                    continue
                if problem is not None:
                    issue = (problem.field, problem.message, sku)
                    add(key, _ISSUE, start, dumps(issue, MARSHAL_VERSION))
                    continue
                if sv_i >= 0:
                    view = row[sv_i].strip()
                    if view:
                        if view not in views:
                            views[_own_copy(view)] = None
                        if allowed_views is not None and view not in allowed_views:
                            continue
                if not nul or nul[-1] < start:
                    add(key, _JOINED, start, "\0".join(row).encode("utf-8", "surrogateescape"))
                else:  # a NUL in a cell
                    add(key, _ROW, start, dumps(row, MARSHAL_VERSION))
        except csv.Error as exc:
            if at < limit:  # else the error is in the next range's first row
                out.failed = True
                self._gave_up(exc, end + 1)
        out.rows = rows
        out.end = at
        return out

    def _gave_up(self, exc: csv.Error, line: int) -> None:
        self._report.complete = False
        self._issue(SourceIssue(f"the CSV cannot be parsed past this point: {exc}", line=line))

    def _header(self, reader: Iterator[list[str]], lines: _Lines) -> list[str]:
        """The header row, stripped; a file that has none, or no `sku` column, is refused
        without naming any of its cells (it may not be a catalog at all)."""
        try:
            header = next(reader, None)
        except csv.Error as exc:
            raise SourceError(f"{self.uri}: cannot read the header: {exc}") from exc
        if lines.error is not None and header is None:
            raise SourceError(f"{self.uri}: cannot read: {lines.error}")
        if not header or not any(h.strip() for h in header):
            raise SourceError(f"{self.uri}: the file is empty (no header row)")
        header = [h.strip() for h in header]
        if "sku" not in header:
            raise SourceError(
                f"{self.uri}: no 'sku' column in the header (line 1 has {len(header)} fields); "
                "is this a Magento product export with ',' as the field separator?"
            )
        return header

    def _end_of_pass1(self, lines: _Lines, rows: int, views: dict[str, None]) -> None:
        report = self._report
        if lines.error is not None:
            report.complete = False
            self._issue(
                SourceIssue(
                    f"the source could not be read to its end: {lines.error}; "
                    "no deletions will be derived from this read",
                    line=lines.line_no,
                )
            )
        report.rows = rows
        report.store_views = sorted(views)

    def _shape_problem(
        self, sku: str, n: int, ncols: int, start: int, end: int, lines: _Lines
    ) -> SourceIssue:
        """A row whose cell count is not the header's: the file's structure is
        damaged here, so the read is incomplete (rows may have been swallowed). At the
        end of the stream, an odd number of quotes in it (`lines.quotes`: a byte range
        starts where the count is even) means a quote was never closed."""
        self._report.complete = False
        at_eof = lines.at_eof()
        if at_eof and not lines.ends_with_newline:
            message = (
                f"the file ends in the middle of a record ({n} of {ncols} cells): it looks "
                "truncated; no deletions will be made"
            )
        elif at_eof and lines.quotes % 2 == 1:
            message = (
                f"unclosed quote: the record starting at line {start} runs to the end of "
                f"the file (line {end}); no deletions will be made"
            )
        else:
            message = (
                f"the row has {n} cells but the header has {ncols} (an unbalanced quote or "
                "a stray separator?); the read is marked incomplete"
            )
        issue = SourceIssue(message, line=start, sku=_printable(sku) or None)
        self._issue(issue)
        return issue


def _add_links(
    add: Callable[[str, bytes, int, bytes], None],
    kind: bytes,
    cell: str,
    sku: str,
    line: int,
    wanted: frozenset[str] | None,
) -> None:
    """A parent's `configurable_variations` or `bundle_values`: its children's links to it."""
    for child in _variation_children(cell):
        ckey = child.lower()
        if wanted is None or ckey in wanted:
            add(ckey, kind, line, sku.encode("utf-8", "surrogateescape"))


def _utf8_problem(
    row: list[str], header: list[str], line: int, sku: str
) -> tuple[SourceIssue, str]:
    """A row with bytes that are not UTF-8: the issue (naming the first such field), and
    the SKU to go on with (none, when the SKU itself is the bad field)."""
    field = _bad_field(row, header)
    problem = SourceIssue(
        "invalid UTF-8 (the file must be UTF-8 encoded)",
        line=line,
        sku=_printable(sku) if sku else None,
        field=field,
    )
    return problem, "" if field == "sku" else sku


def _own_copy(text: str) -> str:
    """A copy of a cell's string, so that a kept store view code does not keep its
    row's cell alive."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
