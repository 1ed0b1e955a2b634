"""Reading an export back record by record (keeping the raw text), and `edit()` /
`edit_fraction()`: a copy with prices changed, products removed and added."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TextIO

from catalog_sync.errors import SourceError
from devstack.synth.export_format import EXPORT_COLUMNS, format_row
from devstack.synth.vocabulary import price_str, stamp
from devstack.synth.writer import Builder


def iter_records(path: str | Path) -> Iterator[tuple[int, str, list[str]]]:
    """Yields (record number, raw text, fields); record 0 is the header.

    Quoted cells may hold newlines, so physical lines are joined until the quotes balance.
    """
    csv.field_size_limit(1 << 30)
    with open(path, encoding="utf-8", newline="") as src:
        pending: list[str] = []
        quotes = 0
        number = 0
        for line in src:
            pending.append(line)
            quotes += line.count('"')
            if quotes % 2:
                continue
            raw = "".join(pending)
            pending.clear()
            quotes = 0
            fields = next(csv.reader(io.StringIO(raw)), [])
            yield number, raw, fields
            number += 1
        if pending:
            raise SourceError(f"{path}: record {number}: unterminated quoted cell at end of file")


@dataclass(frozen=True)
class EditResult:
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    added: tuple[str, ...]
    products_before: int
    products_after: int


@dataclass
class _Scan:
    header: list[str]
    products: list[str]
    priced: list[str]
    standalone_candidates: list[str]
    children: set[str]


def _index(header: list[str], path: str | Path) -> dict[str, int]:
    index = {name: i for i, name in enumerate(header)}
    for needed in ("sku", "product_type", "price"):
        if needed not in index:
            raise SourceError(f"{path}: header has no {needed!r} column")
    return index


def _scan(path: str | Path) -> _Scan:
    header: list[str] = []
    idx: dict[str, int] = {}
    products: list[str] = []
    priced: list[str] = []
    simple_like: list[str] = []
    children: set[str] = set()
    seen: set[str] = set()
    for number, _raw, fields in iter_records(path):
        if number == 0:
            header = fields
            idx = _index(header, path)
            continue
        if len(fields) != len(header):
            raise SourceError(
                f"{path}: record {number}: {len(fields)} cells, header has {len(header)}"
            )
        sku = fields[idx["sku"]]
        if not sku:
            raise SourceError(f"{path}: record {number}: field 'sku' is empty")
        store_view = fields[idx["store_view_code"]] if "store_view_code" in idx else ""
        if store_view or sku in seen:
            continue
        seen.add(sku)
        products.append(sku)
        product_type = fields[idx["product_type"]]
        if fields[idx["price"]]:
            priced.append(sku)
        if product_type in ("simple", "virtual"):
            simple_like.append(sku)
        elif product_type == "configurable" and "configurable_variations" in idx:
            for entry in _variation_entries(fields[idx["configurable_variations"]]):
                children.add(_variation_sku(entry))
    if not header:
        raise SourceError(f"{path}: empty file, no header")
    standalone = [s for s in simple_like if s not in children]
    return _Scan(header, products, priced, standalone, children)


def _variation_entries(cell: str) -> list[str]:
    return [e for e in cell.split("|") if e]


def _variation_sku(entry: str) -> str:
    for pair in entry.split(","):
        key, _, value = pair.partition("=")
        if key == "sku":
            return value
    return ""


def _bump_price(old: str, rng: random.Random, sku: str, number: int) -> str:
    try:
        value = float(old)
    except ValueError:
        raise SourceError(
            f"record {number}: sku {sku!r}: field 'price' is not a number: {old!r}"
        ) from None
    new = round(max(value, 1.0) * rng.uniform(1.05, 1.35), 2)
    if "." in old:
        decimals = len(old.split(".", 1)[1])
        text = f"{new:.{max(decimals, 2)}f}" if decimals < 2 else f"{new:.{decimals}f}"
    else:
        text = price_str(new, 1)
    return text if text != old else f"{value + 1:.4f}"


# Edits happen "later" than anything generate() writes (its dates stop in early 2026).
_EDIT_DAY = date(2026, 6, 1)


def edit(
    src: str | Path,
    dst: str | Path,
    *,
    change_prices: int = 0,
    remove: int = 0,
    add: int = 0,
    seed: int = 0,
    only_standalone: bool = True,
) -> EditResult:
    """Streams `src` to `dst`, changing the price of `change_prices` products, removing
    `remove` products (all their rows) and appending `add` new simple products.

    With `only_standalone` the changed and removed products are standalone simple/virtual
    products, so each edit touches exactly one SKU's rows. Otherwise any product with a price
    can change and any product can go; a removed child is also dropped from its parent's
    `configurable_variations`. Changed rows get a new price and `updated_at`; every other row
    is copied byte for byte. Raises `SourceError` on a malformed file, `ValueError` when there
    are not enough products to pick from.
    """
    for label, count in (("change_prices", change_prices), ("remove", remove), ("add", add)):
        if count < 0:
            raise ValueError(f"{label}: must be >= 0, got {count}")
    scan = _scan(src)
    changed, removed, added = _pick(
        scan, random.Random(seed), change_prices, remove, add, seed, only_standalone
    )
    with open(dst, "w", encoding="utf-8", newline="") as out:
        _copy_edited(src, scan.header, out, set(changed), set(removed), seed, only_standalone)
        if added:
            builder = Builder(random.Random(f"{seed}-added"), (), ("base",))
            for sku in added:
                for row in builder.standalone(sku, virtual=False):
                    by_name = dict(zip(EXPORT_COLUMNS, row, strict=True))
                    out.write(format_row([by_name.get(col, "") for col in scan.header]))
    return EditResult(
        changed=tuple(sorted(changed)),
        removed=tuple(sorted(removed)),
        added=tuple(added),
        products_before=len(scan.products),
        products_after=len(scan.products) - len(removed) + len(added),
    )


def _pick(
    scan: _Scan,
    rng: random.Random,
    change_prices: int,
    remove: int,
    add: int,
    seed: int,
    only_standalone: bool,
) -> tuple[list[str], list[str], list[str]]:
    """(SKUs whose price changes, SKUs removed, new SKUs), drawn in this order from `rng`."""
    if only_standalone:
        priced = set(scan.priced)
        remove_pool = scan.standalone_candidates
        price_pool = [s for s in remove_pool if s in priced]
    else:
        price_pool, remove_pool = scan.priced, scan.products
    if change_prices > len(price_pool):
        raise ValueError(
            f"change_prices: {change_prices} requested, only {len(price_pool)} candidate products"
        )
    changed = rng.sample(price_pool, change_prices)
    changed_set = set(changed)
    remove_left = [s for s in remove_pool if s not in changed_set]
    if remove > len(remove_left):
        raise ValueError(f"remove: {remove} requested, only {len(remove_left)} candidate products")
    removed = rng.sample(remove_left, remove)
    existing = set(scan.products)
    added: list[str] = []
    serial = 0
    while len(added) < add:
        serial += 1
        sku = f"NP{seed:04d}{serial:07d}"
        if sku not in existing:
            added.append(sku)
    return changed, removed, added


def _copy_edited(
    src: str | Path,
    header: list[str],
    out: TextIO,
    changed_set: set[str],
    removed_set: set[str],
    seed: int,
    only_standalone: bool,
) -> None:
    """Copies `src` to `out`: removed products dropped, changed ones with a new price and
    `updated_at`, parents of removed children without them (`only_standalone=False`);
    every other record byte for byte."""
    idx = _index(header, src)
    i_sku, i_price = idx["sku"], idx["price"]
    i_updated = idx.get("updated_at")
    i_vars = idx.get("configurable_variations")
    edit_time = stamp(
        f"{_EDIT_DAY.month}/{_EDIT_DAY.day}/{_EDIT_DAY.year % 100:02d}", 540 + seed % 480
    )
    price_rng = random.Random(f"{seed}-prices")
    new_prices: dict[str, str] = {}
    for number, raw, fields in iter_records(src):
        if number == 0:
            out.write(raw)
            continue
        sku = fields[i_sku]
        if sku in removed_set:
            continue
        if sku in changed_set and fields[i_price]:
            if sku not in new_prices:
                new_prices[sku] = _bump_price(fields[i_price], price_rng, sku, number)
            fields[i_price] = new_prices[sku]
            if i_updated is not None and fields[i_updated]:
                fields[i_updated] = edit_time
            out.write(format_row(fields))
            continue
        if i_vars is not None and fields[i_vars] and not only_standalone and removed_set:
            entries = _variation_entries(fields[i_vars])
            kept = [e for e in entries if _variation_sku(e) not in removed_set]
            if len(kept) != len(entries):
                fields[i_vars] = "|".join(kept)
                out.write(format_row(fields))
                continue
        out.write(raw)


def edit_fraction(
    src: str | Path,
    dst: str | Path,
    fraction: float,
    seed: int = 0,
    *,
    only_standalone: bool = True,
) -> EditResult:
    """Changes the price of `fraction` (0..1) of all products in `src` (rounded, at least
    one when fraction > 0); the picked products are standalone ones by default."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction: must be between 0 and 1, got {fraction}")
    total = len(_scan(src).products)
    count = round(total * fraction)
    if fraction > 0:
        count = max(count, 1)
    return edit(src, dst, change_prices=count, seed=seed, only_standalone=only_standalone)
