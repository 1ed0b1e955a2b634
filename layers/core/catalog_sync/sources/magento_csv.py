"""`MagentoCsvSource`: reads Magento's product export CSV (a local file or S3 object).

Two passes keep memory flat however large the file is:

1. stream the CSV once (never the whole file in memory) and spill each row into
   one of N partition files on local disk, chosen by a hash of the lower-cased SKU,
   together with "parent link" records (child SKU -> configurable parent, from the
   parent's `configurable_variations`) and per-row problems; N grows with the
   file size (about one partition per `partition_bytes` of CSV). A small file stays
   in memory (one partition).
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
import re
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, BinaryIO

from catalog_sync.catalog import (
    PRODUCT_TYPES,
    VISIBILITIES,
    CatalogProduct,
    GalleryImage,
    GroupedLink,
    Links,
    Stock,
    StoreValues,
    Variant,
)
from catalog_sync.errors import SourceError
from catalog_sync.records import ReadReport, Rejected, SourceIssue

EMPTY_VALUE = "__EMPTY__VALUE__"
# 8 MiB of CSV per partition: pass 2 holds one partition file in memory, and a file
# of N MiB gives N/8 partitions to share among the reindex workers evenly.
PARTITION_BYTES = 8 * 1024 * 1024
MAX_PARTITIONS = 512
UNKNOWN_SIZE_PARTITIONS = 64
MAX_WARNINGS = 1000
READ_BUFFER = 1 << 20

with contextlib.suppress(OverflowError):
    csv.field_size_limit(sys.maxsize)
if csv.field_size_limit() < 1 << 30:  # pragma: no cover - 32-bit platforms
    csv.field_size_limit(1 << 30)

# column -> (StoreValues field, kind)
_TEXT, _NUM, _ENABLED, _VISIBILITY, _DATE = range(5)
SCALAR_COLUMNS: dict[str, tuple[str, int]] = {
    "name": ("name", _TEXT),
    "description": ("description", _TEXT),
    "short_description": ("short_description", _TEXT),
    "url_key": ("url_key", _TEXT),
    "product_online": ("enabled", _ENABLED),
    "visibility": ("visibility", _VISIBILITY),
    "tax_class_name": ("tax_class", _TEXT),
    "weight": ("weight", _NUM),
    "price": ("price", _NUM),
    "special_price": ("special_price", _NUM),
    "special_price_from_date": ("special_from", _DATE),
    "special_price_to_date": ("special_to", _DATE),
    "meta_title": ("meta_title", _TEXT),
    "meta_keywords": ("meta_keywords", _TEXT),
    "meta_description": ("meta_description", _TEXT),
}
IMAGE_COLUMNS = {
    "base_image": "base",
    "small_image": "small",
    "thumbnail_image": "thumbnail",
    "swatch_image": "swatch",
}
# Main columns that are plain attributes, under their attribute codes.
ATTRIBUTE_COLUMNS = {
    "country_of_manufacture": "country_of_manufacture",
    "new_from_date": "news_from_date",
    "new_to_date": "news_to_date",
    "msrp_price": "msrp",
}
# Columns read elsewhere, or left out of the products feed on purpose (layout,
# timestamps, stock configuration, complex type-specific data).
HANDLED_COLUMNS = frozenset(
    {
        "sku",
        "store_view_code",
        "attribute_set_code",
        "product_type",
        "categories",
        "product_websites",
        "additional_attributes",
        "qty",
        "is_in_stock",
        "manage_stock",
        "use_config_manage_stock",
        "related_skus",
        "crosssell_skus",
        "upsell_skus",
        "additional_images",
        "additional_image_labels",
        "hide_from_product_page",
        "configurable_variations",
        "configurable_variation_labels",
        "associated_skus",
        *SCALAR_COLUMNS,
        *IMAGE_COLUMNS,
        *(f"{c}_label" for c in IMAGE_COLUMNS),
        *ATTRIBUTE_COLUMNS,
    }
)
IGNORED_COLUMNS = frozenset(
    {
        "created_at",
        "gift_message_available",
        "updated_at",
        "display_product_options_in",
        "map_price",
        "map_enabled",
        "custom_design",
        "custom_design_from",
        "custom_design_to",
        "custom_layout_update",
        "custom_layout",
        "page_layout",
        "product_options_container",
        "msrp_display_actual_price_type",
        "out_of_stock_qty",
        "use_config_min_qty",
        "is_qty_decimal",
        "allow_backorders",
        "use_config_backorders",
        "min_cart_qty",
        "use_config_min_sale_qty",
        "max_cart_qty",
        "use_config_max_sale_qty",
        "notify_on_stock_below",
        "use_config_notify_stock_qty",
        "use_config_qty_increments",
        "qty_increments",
        "use_config_enable_qty_inc",
        "enable_qty_increments",
        "is_decimal_divided",
        "website_id",
        "related_position",
        "crosssell_position",
        "upsell_position",
        "custom_options",
        "bundle_price_type",
        "bundle_sku_type",
        "bundle_price_view",
        "bundle_weight_type",
        "bundle_values",
        "bundle_shipment_type",
        "downloadable_links",
        "downloadable_samples",
        "configurable_variation_prices",
        "_store",
        "_attribute_set",
        "_type",
        "_product_websites",
    }
)
# Keys of a configurable_variations entry that are not option attributes.
VARIATION_EXTRA_KEYS = frozenset({"sku", "price", "display", "image", "weight", "qty", "name"})
_TRUE = frozenset({"1", "yes", "true", "y", "enabled"})
_FALSE = frozenset({"0", "no", "false", "n", "disabled"})
_VISIBILITY_LABELS = {v.lower(): v for v in VISIBILITIES} | {
    str(i): v for i, v in enumerate(VISIBILITIES, 1)
}
_VISIBILITY_CELLS = _VISIBILITY_LABELS | {v: v for v in VISIBILITIES}
_ATTR_CODE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_FRAME = struct.Struct("<cIIH")  # kind, line, payload length, key length
_ROW, _LINK, _ISSUE = b"R", b"L", b"E"


class MagentoCsvSource:
    """`ports.CatalogSource` over a Magento product export CSV.

    `uri`: a local path or `s3://bucket/key` (needs `s3_client`; the body is
    streamed). `workdir`: where the temporary partition files go (a temporary
    directory under it, removed after the read). `store_views`: if given, rows of
    other store views are skipped (their codes still show in the report).
    """

    def __init__(
        self,
        uri: str,
        *,
        s3_client: Any = None,
        workdir: Path | None = None,
        store_views: Collection[str] | None = None,
        partition_bytes: int = PARTITION_BYTES,
    ) -> None:
        self.uri = uri
        self.s3_client = s3_client
        self.workdir = workdir
        self.store_views = frozenset(store_views) if store_views is not None else None
        self.partition_bytes = max(1, partition_bytes)
        self._report = ReadReport(complete=False)
        self._warnings = 0

    def describe(self) -> str:
        return f"magento-csv:{self.uri}"

    def report(self) -> ReadReport:
        """How the last read went (valid once `read` is exhausted)."""
        return self._report

    # -- opening -----------------------------------------------------------

    def _open(self) -> tuple[BinaryIO, int | None]:
        if self.uri.startswith("s3://"):
            return self._open_s3()
        path = Path(self.uri[7:] if self.uri.startswith("file://") else self.uri)
        try:
            f = open(path, "rb", buffering=READ_BUFFER)  # noqa: SIM115
            return f, path.stat().st_size
        except OSError as exc:
            raise SourceError(f"cannot open catalog file {path}: {exc.strerror or exc}") from exc

    def _open_s3(self) -> tuple[BinaryIO, int | None]:
        from botocore.exceptions import BotoCoreError, ClientError

        if self.s3_client is None:
            raise SourceError(f"{self.uri}: an S3 source needs an s3 client")
        bucket, _, key = self.uri[5:].partition("/")
        if not bucket or not key:
            raise SourceError(f"{self.uri}: expected s3://bucket/key")
        try:
            resp = self.s3_client.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise SourceError(
                f"cannot read {self.uri}: {err.get('Code', 'error')} {err.get('Message', '')}".strip()
            ) from exc
        except BotoCoreError as exc:
            raise SourceError(f"cannot read {self.uri}: {exc}") from exc
        size = resp.get("ContentLength")
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
            columns: _Columns | None = None
            rejected: list[Rejected] = []
            for entry in self._pass1(stream, spill, wanted):
                if isinstance(entry, _Columns):
                    columns = entry
                else:
                    rejected.append(entry)
            stream.close()
            spill.finish()
            if columns is None:  # pragma: no cover - pass 1 raises first
                raise SourceError(f"{self.uri}: no header")
            partitions = [
                CsvPartition(columns.header, wanted, spill.path(part), spill.take_memory())
                for part in range(parts)
            ]
            yield CsvSplit(rejected, partitions, self)

    def _issue(self, issue: SourceIssue) -> None:
        """A read-level issue (structure) or a warning, kept in the report."""
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
        report = self._report
        lines = _Lines(stream)
        reader = csv.reader(lines)
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
            # No file content in errors (issue 10): this may not be a catalog at all.
            raise SourceError(
                f"{self.uri}: no 'sku' column in the header (line 1 has {len(header)} fields); "
                "is this a Magento product export with ',' as the field separator?"
            )
        columns = _Columns(header)
        yield columns
        ncols = len(header)
        sku_i = columns.index["sku"]
        sv_i = columns.index.get("store_view_code", -1)
        cv_i = columns.index.get("configurable_variations", -1)
        views: dict[str, None] = {}
        allowed_views = self.store_views
        rows = 0
        end = reader.line_num
        quotes = lines.quotes
        bad = lines.bad_lines
        dumps = marshal.dumps
        add = spill.add
        try:
            for row in reader:
                start = end + 1
                end = reader.line_num
                q_start = quotes
                quotes = lines.quotes
                n = len(row)
                if n == 0:
                    continue
                rows += 1
                sku = row[sku_i].strip() if n > sku_i else ""
                problem: SourceIssue | None = None
                if n != ncols:
                    problem = self._shape_problem(
                        sku, n, ncols, start, end, lines, quotes - q_start
                    )
                if bad and bad[-1] >= start:
                    field = _bad_field(row, header)
                    problem = SourceIssue(
                        "invalid UTF-8 (the file must be UTF-8 encoded)",
                        line=start,
                        sku=_printable(sku) if sku else None,
                        field=field,
                    )
                    if field == "sku":
                        sku = ""
                if not sku:
                    if problem is None:
                        if n == 1 and not row[0].strip():
                            rows -= 1  # a blank line
                            continue
                        problem = SourceIssue("the row has no SKU", line=start, field="sku")
                    yield Rejected(None, [problem])
                    continue
                key = sku.lower()
                if cv_i >= 0 and n > cv_i and row[cv_i]:
                    for child in _variation_children(row[cv_i]):
                        ckey = child.lower()
                        if wanted is None or ckey in wanted:
                            add(ckey, _LINK, start, sku.encode("utf-8", "surrogateescape"))
                if wanted is not None and key not in wanted:
                    continue
                if problem is not None:
                    add(key, _ISSUE, start, dumps((problem.field, problem.message, sku)))
                    continue
                if sv_i >= 0:
                    view = row[sv_i].strip()
                    if view:
                        if view not in views:
                            views[view] = None
                        if allowed_views is not None and view not in allowed_views:
                            continue
                add(key, _ROW, start, dumps(row))
        except csv.Error as exc:
            report.complete = False
            self._issue(
                SourceIssue(f"the CSV cannot be parsed past this point: {exc}", line=end + 1)
            )
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
        self, sku: str, n: int, ncols: int, start: int, end: int, lines: _Lines, quotes: int
    ) -> SourceIssue:
        """A row whose cell count is not the header's: the file's structure is
        damaged here, so the read is incomplete (rows may have been swallowed)."""
        self._report.complete = False
        at_eof = lines.at_eof()
        if at_eof and not lines.ends_with_newline:
            message = (
                f"the file ends in the middle of a record ({n} of {ncols} cells): it looks "
                "truncated; no deletions will be made"
            )
        elif at_eof and quotes % 2 == 1:
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


class _StreamRaw(io.RawIOBase):
    """A raw stream over a botocore StreamingBody; library errors become OSError."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._body.read(len(buffer))
        except Exception as exc:  # botocore / urllib3 stream errors
            raise _StreamBrokenError(f"{type(exc).__name__}: {exc}") from exc
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()
        super().close()


class _StreamBrokenError(OSError):
    pass


class _Lines:
    """Decoded lines of a byte stream for `csv.reader`, remembering what the
    parser needs to judge the file: lines with invalid UTF-8, quote count, whether
    the last line ends with a newline, and a read error that ended the stream."""

    def __init__(self, stream: BinaryIO) -> None:
        self._it = iter(stream)
        self.line_no = 0
        self.quotes = 0
        self.bad_lines: list[int] = []
        self.ends_with_newline = True
        self.error: str | None = None
        self._eof = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        try:
            raw = next(self._it)
        except StopIteration:
            self._eof = True
            raise
        except (OSError, ValueError) as exc:
            self.error = str(exc)
            self._eof = True
            raise StopIteration from None
        self.line_no += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "surrogateescape")
            self.bad_lines.append(self.line_no)
        if self.line_no == 1 and text.startswith("\ufeff"):
            text = text[1:]
        if '"' in text:
            self.quotes += text.count('"')
        self.ends_with_newline = text.endswith("\n")
        return text

    def at_eof(self) -> bool:
        if self._eof:
            return True
        # csv.reader stops at the record's end; peek whether anything follows.
        try:
            nxt = next(self._it)
        except StopIteration:
            self._eof = True
            return True
        except (OSError, ValueError) as exc:
            self.error = str(exc)
            self._eof = True
            return True
        self._it = _chain_one(nxt, self._it)
        return False


def _chain_one(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _printable(sku: str) -> str:
    return sku.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _bad_field(row: list[str], header: list[str]) -> str | None:
    for i, cell in enumerate(row):
        try:
            cell.encode("utf-8")
        except UnicodeEncodeError:
            return header[i] if i < len(header) else None
    return None


def _variation_children(cell: str) -> Iterator[str]:
    for entry in cell.split("|"):
        for pair in entry.split(","):
            k, eq, v = pair.partition("=")
            if eq and k.strip() == "sku" and v.strip():
                yield v.strip()
                break


class _Spill:
    """Frames by partition: in memory for one partition, else one file each."""

    def __init__(self, parts: int, tmp: Path | None) -> None:
        self.parts = parts
        self.tmp = tmp
        self._mem: list[tuple[str, bytes, int, bytes]] = []
        self._files: list[IO[bytes]] = []
        if tmp is not None:
            self._files = [
                open(tmp / f"part-{i:04d}.bin", "wb", buffering=1 << 16)  # noqa: SIM115
                for i in range(parts)
            ]

    def add(self, key: str, kind: bytes, line: int, payload: bytes) -> None:
        if self.tmp is None:
            self._mem.append((key, kind, line, payload))
            return
        k = key.encode("utf-8", "surrogateescape")
        f = self._files[zlib.crc32(k) % self.parts]
        f.write(_FRAME.pack(kind, line, len(payload), len(k)))
        f.write(k)
        f.write(payload)

    def finish(self) -> None:
        for f in self._files:
            f.close()

    def close(self) -> None:
        self.finish()
        self._mem = []

    def path(self, part: int) -> Path | None:
        return None if self.tmp is None else self.tmp / f"part-{part:04d}.bin"

    def take_memory(self) -> list[tuple[str, bytes, int, bytes]] | None:
        """The in-memory frames (one partition), handed over once."""
        if self.tmp is not None:
            return None
        mem, self._mem = self._mem, []
        return mem


_Frames = list[tuple[bytes, int, bytes]]


def _memory_groups(mem: list[tuple[str, bytes, int, bytes]]) -> Iterator[tuple[str, _Frames]]:
    """(lower-cased SKU, frames), SKUs in first-seen order."""
    groups: dict[str, _Frames] = {}
    for key, kind, line, payload in mem:
        g = groups.get(key)
        if g is None:
            groups[key] = [(kind, line, payload)]
        else:
            g.append((kind, line, payload))
    mem.clear()
    yield from groups.items()


def _file_groups(path: Path) -> Iterator[tuple[str, _Frames]]:
    """(lower-cased SKU, frames) of one partition file, SKUs in first-seen order;
    the file is removed once read."""
    data = path.read_bytes()
    path.unlink()
    view = memoryview(data)
    pos, size, unpack = 0, len(data), _FRAME.unpack_from
    hsize = _FRAME.size
    # Index by SKU (offsets only), so memory holds the partition's bytes once.
    index: dict[str, list[tuple[bytes, int, int, int]]] = {}
    while pos < size:
        kind, line, plen, klen = unpack(data, pos)
        pos += hsize
        key = bytes(view[pos : pos + klen]).decode("utf-8", "surrogateescape")
        pos += klen
        entry = (kind, line, pos, plen)
        g2 = index.get(key)
        if g2 is None:
            index[key] = [entry]
        else:
            g2.append(entry)
        pos += plen
    for key, entries in index.items():
        yield key, [(k, ln, bytes(view[p : p + n])) for k, ln, p, n in entries]
    view.release()


class CsvPartition:
    """One partition of pass 2: builds the products of its SKUs. A file partition
    pickles as its path (to be built in a worker process)."""

    def __init__(
        self,
        header: list[str],
        wanted: frozenset[str] | None,
        path: Path | None,
        memory: list[tuple[str, bytes, int, bytes]] | None,
    ) -> None:
        self.header = header
        self.wanted = wanted
        self.path = path
        self.memory = memory
        self.built = 0  # products built by `records`

    def __getstate__(self) -> dict[str, Any]:
        if self.path is None:
            raise TypeError("an in-memory partition cannot leave its process")
        return {"header": self.header, "wanted": self.wanted, "path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["header"], state["wanted"], state["path"], None)  # type: ignore[misc]

    def records(self, warn: Callable[[SourceIssue], None]) -> Iterator[CatalogProduct | Rejected]:
        """The partition's products (and rejections); `warn` takes warnings."""
        builder = _Builder(_Columns(self.header), warn)
        wanted = self.wanted
        if self.path is not None:
            groups = _file_groups(self.path) if self.path.exists() else iter(())
        else:
            groups = _memory_groups(self.memory or [])
        for key, frames in groups:
            if wanted is not None and key not in wanted:
                continue
            product = builder.build(frames)
            if product is None:
                continue
            if isinstance(product, CatalogProduct):
                self.built += 1
            yield product


class CsvSplit:
    """What `MagentoCsvSource.split` gives: pass 1's rejections and the partitions."""

    def __init__(
        self, rejected: list[Rejected], partitions: list[CsvPartition], source: MagentoCsvSource
    ) -> None:
        self.rejected = rejected
        self.partitions = partitions
        self._source = source

    def warn(self, issue: SourceIssue) -> None:
        self._source._issue(issue)

    def merge(self, records: int, warnings: Collection[SourceIssue] = ()) -> None:
        """Count products built (and their warnings) into the source's report."""
        self._source._report.records += records
        for issue in warnings:
            self._source._issue(issue)


class _Columns:
    """Where each known column is in this file's header."""

    def __init__(self, header: list[str]) -> None:
        self.header = header
        self.index: dict[str, int] = {}
        for i, name in enumerate(header):
            self.index.setdefault(name, i)
        get = self.index.get
        self.scalars = [
            (i, fname, kind, col)
            for col, (fname, kind) in SCALAR_COLUMNS.items()
            if (i := get(col, -1)) >= 0
        ]
        self.images = [
            (i, get(f"{col}_label", -1), role, col)
            for col, role in IMAGE_COLUMNS.items()
            if (i := get(col, -1)) >= 0
        ]
        self.attributes = [
            (i, ATTRIBUTE_COLUMNS.get(name, name), name)
            for name, i in self.index.items()
            if name
            and name not in HANDLED_COLUMNS
            and name not in IGNORED_COLUMNS
            and (name in ATTRIBUTE_COLUMNS or not name.startswith("_"))
        ]
        self.attributes += [
            (i, code, col) for col, code in ATTRIBUTE_COLUMNS.items() if (i := get(col, -1)) >= 0
        ]
        self.sku = self.index["sku"]
        self.store_view = get("store_view_code", -1)
        self.product_type = get("product_type", -1)
        self.attribute_set = get("attribute_set_code", -1)
        self.websites = get("product_websites", -1)
        self.categories = get("categories", -1)
        self.additional_attributes = get("additional_attributes", -1)
        self.qty = get("qty", -1)
        self.is_in_stock = get("is_in_stock", -1)
        self.manage_stock = get("manage_stock", -1)
        self.use_config_manage_stock = get("use_config_manage_stock", -1)
        self.related = get("related_skus", -1)
        self.crosssell = get("crosssell_skus", -1)
        self.upsell = get("upsell_skus", -1)
        self.gallery = get("additional_images", -1)
        self.gallery_labels = get("additional_image_labels", -1)
        self.hidden = get("hide_from_product_page", -1)
        self.variations = get("configurable_variations", -1)
        self.variation_labels = get("configurable_variation_labels", -1)
        self.associated = get("associated_skus", -1)


class _RowError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class _Builder:
    """Turns the frames of one SKU into a CatalogProduct (or a Rejected)."""

    def __init__(self, columns: _Columns, warn: Callable[[SourceIssue], None]) -> None:
        self.c = columns
        self.warn = warn

    def build(self, frames: list[tuple[bytes, int, bytes]]) -> CatalogProduct | Rejected | None:
        c = self.c
        issues: list[SourceIssue] = []
        rows: list[tuple[int, list[str]]] = []
        parents: dict[str, str] = {}
        for kind, line, payload in frames:
            if kind == _ROW:
                rows.append((line, marshal.loads(payload)))
            elif kind == _LINK:
                parent = payload.decode("utf-8", "surrogateescape")
                parents.setdefault(parent.lower(), parent)
            else:
                fld, msg, row_sku = marshal.loads(payload)
                issues.append(SourceIssue(msg, line=line, sku=_printable(row_sku), field=fld))
        if not rows and not issues:
            return None  # only parent links: the child is not in this file
        rows.sort(key=_first)
        global_row: tuple[int, list[str]] | None = None
        overrides: dict[str, tuple[int, list[str]]] = {}
        sku = rows[0][1][c.sku].strip() if rows else ""
        for line, row in rows:
            view = row[c.store_view].strip() if c.store_view >= 0 else ""
            if not view:
                if global_row is None:
                    global_row = (line, row)
                    sku = row[c.sku].strip()
                    continue
                first = global_row[0]
            elif view not in overrides:
                overrides[view] = (line, row)
                continue
            else:
                first = overrides[view][0]
            issues.append(
                SourceIssue(
                    f"duplicate row for SKU {row[c.sku].strip()!r} and store view "
                    f"{view or '(global)'!r} (first at line {first})",
                    line=line,
                    sku=row[c.sku].strip(),
                    field="store_view_code" if view else "sku",
                )
            )
        if not sku and issues:
            sku = issues[0].sku or ""
        if global_row is None and rows:
            issues.append(
                SourceIssue(
                    "no global row (empty store_view_code) for this SKU, only store view "
                    f"rows ({', '.join(sorted(overrides))})",
                    line=rows[0][0],
                    sku=sku,
                    field="store_view_code",
                )
            )
        product: CatalogProduct | None = None
        if global_row is not None:
            product = self._product(sku, global_row, overrides, issues)
        if issues or product is None:
            for i, issue in enumerate(issues):
                if issue.sku is None:
                    issues[i] = SourceIssue(
                        issue.message, issue.line, sku or None, issue.field, issue.severity
                    )
            return Rejected(sku or None, issues)
        product.parent_skus = tuple(parents.values())
        return product

    def _product(
        self,
        sku: str,
        global_row: tuple[int, list[str]],
        overrides: dict[str, tuple[int, list[str]]],
        issues: list[SourceIssue],
    ) -> CatalogProduct | None:
        c = self.c
        line, row = global_row
        n_issues = len(issues)

        def fail(field: str, message: str, at: int = line) -> None:
            issues.append(SourceIssue(message, line=at, sku=sku, field=field))

        ptype = row[c.product_type].strip().lower() if c.product_type >= 0 else ""
        if not ptype:
            ptype = "simple"
        elif ptype not in PRODUCT_TYPES:
            fail(
                "product_type",
                f"unknown product type {row[c.product_type].strip()!r} "
                f"(expected one of {', '.join(sorted(PRODUCT_TYPES))})",
            )
        values = self._values(sku, line, row, issues, is_global=True)
        views: dict[str, StoreValues] = {}
        for view, (vline, vrow) in overrides.items():
            views[view] = self._values(sku, vline, vrow, issues, is_global=False)
        try:
            product = CatalogProduct(
                sku=sku,
                line=line,
                product_type=ptype,
                attribute_set=(row[c.attribute_set].strip() if c.attribute_set >= 0 else "")
                or "Default",
                websites=_split_list(row[c.websites]) if c.websites >= 0 else None,
                values=values,
                overrides=views,
                categories=_categories(row[c.categories]) if c.categories >= 0 else (),
                stock=self._stock(row),
                gallery=self._gallery(row),
                variants=self._variants(row),
                variant_labels=_pairs(row[c.variation_labels], "configurable_variation_labels")
                if c.variation_labels >= 0
                else {},
                links=Links(
                    related=_split_list(row[c.related]) if c.related >= 0 else (),
                    crosssell=_split_list(row[c.crosssell]) if c.crosssell >= 0 else (),
                    upsell=_split_list(row[c.upsell]) if c.upsell >= 0 else (),
                ),
                grouped=self._grouped(row),
            )
        except _RowError as exc:
            fail(exc.field, exc.message)
            return None
        if len(issues) > n_issues:
            return None
        return product

    def _values(
        self, sku: str, line: int, row: list[str], issues: list[SourceIssue], *, is_global: bool
    ) -> StoreValues:
        c = self.c
        kw: dict[str, Any] = {}
        cleared: set[str] | None = None
        for i, fname, kind, col in c.scalars:
            cell = row[i]
            if not cell:
                continue
            if cell == EMPTY_VALUE:
                if cleared is None:
                    cleared = set()
                cleared.add(fname)
                continue
            if cell[0] == " " and len(cell) > 1 and cell[1] in "-+=":
                cell = cell[1:]
            if kind == _TEXT:
                kw[fname] = cell
                continue
            try:
                if kind == _NUM:
                    try:
                        number = float(cell)
                    except ValueError:
                        number = _number(cell)
                    if number - number != 0.0:  # inf, nan
                        number = _number(cell)
                    kw[fname] = number
                elif kind == _VISIBILITY:
                    v = _VISIBILITY_CELLS.get(cell)
                    kw[fname] = v if v is not None else _visibility(cell)
                elif kind == _ENABLED:
                    b = _ENABLED_CELLS.get(cell)
                    kw[fname] = b if b is not None else _enabled(cell)
                else:
                    kw[fname] = parse_date(cell)
            except _DateError:
                self.warn(
                    SourceIssue(
                        f"unrecognised date {cell!r}: ignored",
                        line=line,
                        sku=sku,
                        field=col,
                        severity="warning",
                    )
                )
            except ValueError as exc:
                issues.append(SourceIssue(str(exc), line=line, sku=sku, field=col))
        images: dict[str, str] = {}
        labels: dict[str, str] = {}
        for i, li, role, _col in c.images:
            cell = row[i]
            if cell:
                if cell != EMPTY_VALUE:
                    images[role] = cell.strip()
                elif not is_global:
                    images[role] = ""
            if li >= 0:
                label = row[li]
                if label:
                    if label != EMPTY_VALUE:
                        labels[role] = label
                    elif not is_global:
                        labels[role] = ""
        attributes: dict[str, tuple[str, ...]] = {}
        if c.additional_attributes >= 0:
            cell = row[c.additional_attributes]
            if cell:
                for code, value in _additional_attributes(cell):
                    if value == EMPTY_VALUE:
                        if not is_global:
                            attributes[code] = ()
                        continue
                    vals = _multi(value)
                    if vals or not is_global:
                        attributes[code] = vals
        for i, code, _col in c.attributes:
            cell = row[i]
            if cell:
                if cell == EMPTY_VALUE:
                    if not is_global:
                        attributes[code] = ()
                else:
                    attributes[code] = _multi(cell)
        return StoreValues(
            images=images,
            image_labels=labels,
            attributes=attributes,
            cleared=frozenset(cleared) if cleared else _NO_CLEARS,
            **kw,
        )

    def _stock(self, row: list[str]) -> Stock | None:
        c = self.c
        qty_cell = row[c.qty].strip() if c.qty >= 0 else ""
        stock_cell = row[c.is_in_stock].strip() if c.is_in_stock >= 0 else ""
        if not qty_cell and not stock_cell:
            return None
        qty = 0.0
        if qty_cell and qty_cell != EMPTY_VALUE:
            try:
                qty = _number(qty_cell)
            except ValueError as exc:
                raise _RowError("qty", str(exc)) from None
        in_stock = False
        if stock_cell and stock_cell != EMPTY_VALUE:
            in_stock = _flag(stock_cell, "is_in_stock")
        manage: bool | None = None
        use_config = (
            row[c.use_config_manage_stock].strip() if c.use_config_manage_stock >= 0 else ""
        )
        manage_cell = row[c.manage_stock].strip() if c.manage_stock >= 0 else ""
        if (
            manage_cell
            and manage_cell != EMPTY_VALUE
            and (not use_config or not _flag(use_config, "use_config_manage_stock"))
        ):
            manage = _flag(manage_cell, "manage_stock")
        return Stock(qty=qty, is_in_stock=in_stock, manage_stock=manage)

    def _gallery(self, row: list[str]) -> tuple[GalleryImage, ...]:
        c = self.c
        if c.gallery < 0 or not row[c.gallery] or row[c.gallery] == EMPTY_VALUE:
            return ()
        paths = [p.strip() for p in row[c.gallery].split(",")]
        labels = row[c.gallery_labels].split(",") if c.gallery_labels >= 0 else []
        hidden = (
            {p.strip() for p in row[c.hidden].split(",")} if c.hidden >= 0 and row[c.hidden] else ()
        )
        out = []
        for pos, path in enumerate(paths, 1):
            if not path:
                continue
            label = labels[pos - 1].strip() if pos <= len(labels) else ""
            out.append(GalleryImage(path, label or None, pos, path in hidden))
        return tuple(out)

    def _variants(self, row: list[str]) -> tuple[Variant, ...]:
        c = self.c
        if c.variations < 0 or not row[c.variations] or row[c.variations] == EMPTY_VALUE:
            return ()
        out = []
        for n, entry in enumerate(row[c.variations].split("|"), 1):
            if not entry.strip():
                continue
            child = ""
            options: list[tuple[str, str]] = []
            for pair in entry.split(","):
                k, eq, v = pair.partition("=")
                k = k.strip()
                if not eq:
                    if options:  # a comma inside a label: glue it back, as Magento does
                        code, label = options[-1]
                        options[-1] = (code, f"{label},{pair}")
                        continue
                    raise _RowError(
                        "configurable_variations", f"entry {n} has {pair!r}, expected key=value"
                    )
                if k == "sku":
                    child = v.strip()
                elif k not in VARIATION_EXTRA_KEYS:
                    options.append((k, v.strip()))
            if not child:
                raise _RowError("configurable_variations", f"entry {n} has no sku=")
            out.append(Variant(child, tuple(options)))
        return tuple(out)

    def _grouped(self, row: list[str]) -> tuple[GroupedLink, ...]:
        c = self.c
        if c.associated < 0 or not row[c.associated] or row[c.associated] == EMPTY_VALUE:
            return ()
        out = []
        for entry in row[c.associated].split(","):
            entry = entry.strip()
            if not entry:
                continue
            sku, eq, qty = entry.rpartition("=")
            if not eq:
                out.append(GroupedLink(entry, None))
                continue
            try:
                out.append(GroupedLink(sku.strip(), _number(qty) if qty.strip() else None))
            except ValueError as exc:
                raise _RowError("associated_skus", f"{entry!r}: {exc}") from None
        return tuple(out)


def _first(item: tuple[int, list[str]]) -> int:
    return item[0]


_NO_CLEARS: frozenset[str] = frozenset()
# product_online cells as written by Magento, and the booleans they mean
_ENABLED_CELLS = {"1": True, "2": False, "0": False}


def _multi(value: str) -> tuple[str, ...]:
    """`a|b||c` -> ("a", "b", "c"): a (multiselect) value's non-empty parts."""
    if "|" not in value:
        return (value,) if value else ()
    parts = value.split("|")
    if "" in parts:
        return tuple(v for v in parts if v)
    return tuple(parts)


# -- value parsers ---------------------------------------------------------------


def _number(cell: str) -> float:
    s = cell.strip()
    try:
        value = float(s)
    except ValueError:
        raise ValueError(f"not a number: {cell!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {cell!r}")
    return value


def _flag(cell: str, field: str) -> bool:
    s = cell.strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise _RowError(field, f"expected 0 or 1, got {cell!r}")


def _enabled(cell: str) -> bool:
    s = cell.strip().lower()
    if s in ("1", "enabled", "yes", "true"):
        return True
    if s in ("2", "0", "disabled", "no", "false"):
        return False
    raise ValueError(f"product_online must be 1 (enabled) or 2 (disabled), got {cell!r}")


def _visibility(cell: str) -> str:
    v = _VISIBILITY_LABELS.get(cell.strip().lower())
    if v is None:
        raise ValueError(
            f"unknown visibility {cell!r} (expected one of: {'; '.join(VISIBILITIES)})"
        )
    return v


class _DateError(ValueError):
    pass


_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_US_DATE = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?"
)
_DOT_DATE = re.compile(
    r"(\d{1,2})\.(\d{1,2})\.(\d{2}|\d{4})(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?"
)


@lru_cache(maxsize=4096)
def parse_date(cell: str) -> datetime:
    """A Magento export date, leniently: `2015-10-23 00:35:03`, `3/6/24`,
    `3/6/24, 8:59 PM` (U+202F before PM in newer ICU), `16.03.15, 17:08`. Naive
    times are taken as UTC (the export does not say the zone)."""
    s = cell.strip().replace("\u202f", " ").replace("\u00a0", " ")
    try:
        m = _ISO_DATE.fullmatch(s)
        if m:
            y, mo, d, hh, mm, ss = m.groups()
            return _dt(int(y), int(mo), int(d), hh, mm, ss)
        m = _US_DATE.fullmatch(s)
        if m:
            mo, d, y, hh, mm, ss, ampm = m.groups()
            hour = int(hh) if hh else 0
            if ampm:
                if not 1 <= hour <= 12:
                    raise ValueError(hour)
                hour = hour % 12 + (12 if ampm.lower() == "pm" else 0)
            return _dt(_year(y), int(mo), int(d), str(hour), mm, ss)
        m = _DOT_DATE.fullmatch(s)
        if m:
            d, mo, y, hh, mm, ss = m.groups()
            return _dt(_year(y), int(mo), int(d), hh, mm, ss)
    except ValueError:
        pass
    raise _DateError(cell)


def _year(y: str) -> int:
    return int(y) + 2000 if len(y) == 2 else int(y)


def _dt(y: int, mo: int, d: int, hh: str | None, mm: str | None, ss: str | None) -> datetime:
    return datetime(y, mo, d, int(hh or 0), int(mm or 0), int(ss or 0), tzinfo=UTC)


@lru_cache(maxsize=4096)
def _split_list(cell: str) -> tuple[str, ...]:
    if not cell or cell == EMPTY_VALUE:
        return ()
    return tuple(s for s in (p.strip() for p in cell.split(",")) if s)


def _pairs(cell: str, field: str) -> dict[str, str]:
    if not cell or cell == EMPTY_VALUE:
        return {}
    return dict(_additional_attributes(cell))


@lru_cache(maxsize=4096)
def _categories(cell: str) -> tuple[tuple[str, ...], ...]:
    """`Default Category/Men/Tops,Default Category/Gear` -> (("Men","Tops"),("Gear",)).

    Paths are joined by `,`, which Magento does not escape inside names: a fragment
    that starts with a space and not with a root name seen in this cell (`Tops, Tees`)
    is glued back onto the previous path. `\\/` is a `/` inside a name. The
    root is left out; a bare root is no category."""
    if not cell or cell == EMPTY_VALUE:
        return ()
    roots: set[str] = set()
    paths: list[list[str]] = []
    for frag in cell.split(","):
        levels = _split_path(frag)
        first = levels[0]
        starts_path = not paths or first in roots or not frag[:1].isspace()
        if starts_path:
            roots.add(first)
            paths.append(levels)
        else:  # a comma inside the last name
            last = paths[-1]
            last[-1] = f"{last[-1]},{levels[0]}"
            last.extend(levels[1:])
    out: dict[tuple[str, ...], None] = {}
    for levels in paths:
        path = tuple(name.strip() for name in levels[1:])
        if path and all(path):
            out[path] = None
    return tuple(out)


def _split_path(fragment: str) -> list[str]:
    if "\\/" not in fragment:
        return fragment.split("/")
    return [p.replace("\x00", "/") for p in fragment.replace("\\/", "\x00").split("/")]


def _additional_attributes(cell: str) -> list[tuple[str, str]]:
    """`code=value,code2=a|b` -> [(code, value), (code2, "a|b")].

    Values may be wrapped in `"` (the export's "Fields Enclosure" option; `""`
    inside is a quote). A fragment without `=` (or whose key is not an attribute
    code) belongs to the previous value, which contained a comma, as Magento does."""
    if '"' not in cell:
        return _plain_attributes(cell)
    return _quoted_attributes(cell)


def _quoted_attributes(cell: str) -> list[tuple[str, str]]:
    """`_additional_attributes`, for any cell (values may be quoted)."""
    out: list[tuple[str, str]] = []
    pos, n = 0, len(cell)
    while pos < n:
        eq = cell.find("=", pos)
        comma = cell.find(",", pos)
        if eq < 0 or (0 <= comma < eq):
            end = n if comma < 0 else comma
            frag = cell[pos:end]
            if out:
                code, value = out[-1]
                out[-1] = (code, f"{value},{frag}")
            pos = end + 1
            continue
        code = cell[pos:eq].strip()
        if not _ATTR_CODE.match(code):
            end = n if comma < 0 else comma
            frag = cell[pos:end]
            if out:
                prev_code, value = out[-1]
                out[-1] = (prev_code, f"{value},{frag}")
            pos = end + 1
            continue
        start = eq + 1
        if cell.startswith('"', start):
            value_chars: list[str] = []
            i = start + 1
            while i < n:
                q = cell.find('"', i)
                if q < 0:
                    value_chars.append(cell[i:])
                    i = n
                    break
                value_chars.append(cell[i:q])
                if cell.startswith('"', q + 1):
                    value_chars.append('"')
                    i = q + 2
                    continue
                i = q + 1
                break
            value = "".join(value_chars)
            comma = cell.find(",", i)
            pos = n if comma < 0 else comma + 1
        else:
            end = n if comma < 0 else comma
            value = cell[start:end]
            pos = end + 1
        out.append((code, value))
    return out


_attr_code_cache: dict[str, bool] = {}


def _is_attr_code(code: str) -> bool:
    ok = _attr_code_cache.get(code)
    if ok is None:
        ok = _ATTR_CODE.match(code) is not None
        if len(_attr_code_cache) < 4096:
            _attr_code_cache[code] = ok
    return ok


def _plain_attributes(cell: str) -> list[tuple[str, str]]:
    """`_additional_attributes` of a cell without quotes (the common case)."""
    out: list[tuple[str, str]] = []
    frags = cell.split(",")
    if not frags[-1]:  # a trailing comma ends the cell, no empty fragment follows
        frags.pop()
    for frag in frags:
        code, eq, value = frag.partition("=")
        if eq:
            code = code.strip()
            if _is_attr_code(code):
                out.append((code, value))
                continue
        if out:
            prev_code, prev = out[-1]
            out[-1] = (prev_code, f"{prev},{frag}")
    return out
