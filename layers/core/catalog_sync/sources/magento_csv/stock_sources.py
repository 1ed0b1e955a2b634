"""The "Stock Sources" export file (System > Data Transfer > Export, entity "Stock
Sources"): one row per product and inventory source, `source_code,sku,status,quantity`.

For multi-source (MSI) shops: pass 1 spills each row into the product's partition (a
`_SOURCE` frame), pass 2 turns a product's source items into its `StockLevel`s with
the shop's stock layout (`INVENTORY_STOCKS`; without it, one stock "1" made of every
source in the file, on every website). A bad row is reported (line, SKU, field) and
left out; the product keeps its other source items."""

from __future__ import annotations

import csv
import io
import marshal
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from catalog_sync.errors import SourceError
from catalog_sync.records import SourceIssue
from catalog_sync.sources.inventory import SourceItem
from catalog_sync.sources.magento_csv.columns import _SOURCE, MARSHAL_VERSION

if TYPE_CHECKING:
    from catalog_sync.sources.magento_csv.partitions import _Spill

COLUMNS = ("source_code", "sku", "status", "quantity")


def spill_stock_sources(
    stream: BinaryIO,
    name: str,
    spill: _Spill,
    wanted: frozenset[str] | None,
    warn: Callable[[SourceIssue], None],
) -> list[str]:
    """Spill the file's rows by SKU; the source codes it names, in first-seen order."""
    reader = csv.reader(io.TextIOWrapper(stream, encoding="utf-8", newline=""))
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise SourceError(f"{name}: not a Stock Sources export (no column {', '.join(missing)})")
    at = {c: header.index(c) for c in COLUMNS}
    codes: dict[str, None] = {}
    for row in _rows(reader, len(header)):
        line, cells = row
        sku, code = cells[at["sku"]].strip(), cells[at["source_code"]].strip()
        if not sku or not code:
            warn(
                SourceIssue(
                    f"{name}: a row without sku or source_code: left out",
                    line=line,
                    sku=sku or None,
                    field="sku" if not sku else "source_code",
                    severity="warning",
                )
            )
            continue
        codes.setdefault(code, None)
        if wanted is not None and sku.lower() not in wanted:
            continue
        payload = (code, cells[at["quantity"]].strip(), cells[at["status"]].strip(), name)
        spill.add(sku.lower(), _SOURCE, line, marshal.dumps(payload, MARSHAL_VERSION))
    return list(codes)


def _rows(reader: Iterator[list[str]], width: int) -> Iterator[tuple[int, list[str]]]:
    line = 1
    for cells in reader:
        line = getattr(reader, "line_num", line + 1)
        if len(cells) >= width:
            yield line, cells


def source_item(
    payload: bytes, line: int, sku: str, warn: Callable[[SourceIssue], None]
) -> SourceItem | None:
    """A spilled row as a `SourceItem` (None, reported, if its cells are bad)."""
    code, quantity, status, name = marshal.loads(payload)
    try:
        qty = float(quantity) if quantity else 0.0
        if qty != qty or qty in (float("inf"), float("-inf")):
            raise ValueError
    except ValueError:
        warn(_bad(name, line, sku, "quantity", f"quantity {quantity!r} is not a number"))
        return None
    if status not in ("0", "1"):
        warn(_bad(name, line, sku, "status", f"status {status!r} is not 0 or 1"))
        return None
    return SourceItem(code, qty, status == "1")


def _bad(name: str, line: int, sku: str, field: str, message: str) -> SourceIssue:
    return SourceIssue(
        f"{name}: {message}; this source item is left out",
        line=line,
        sku=sku,
        field=field,
        severity="warning",
    )
