"""Pass 2: the rows of one SKU (all store views) become a CatalogProduct, or a Rejected naming line and field."""

from __future__ import annotations

import marshal
from collections.abc import Callable
from typing import Any

from catalog_sync.catalog import (
    PRODUCT_TYPES,
    BundleOption,
    BundleSelection,
    CatalogProduct,
    GalleryImage,
    GroupedLink,
    Links,
    Stock,
    StoreValues,
    Variant,
)
from catalog_sync.records import Rejected, SourceIssue
from catalog_sync.sources.inventory import StockDef, stock_levels
from catalog_sync.sources.magento_csv.cells import (
    _ENABLED_CELLS,
    _NO_CLEARS,
    _additional_attributes,
    _categories,
    _enabled,
    _first,
    _flag,
    _multi,
    _number,
    _pairs,
    _RowError,
    _split_list,
    _visibility,
)
from catalog_sync.sources.magento_csv.columns import (
    _BUNDLE_LINK,
    _ENABLED,
    _JOINED,
    _LINK,
    _NUM,
    _ROW,
    _SOURCE,
    _TEXT,
    _VISIBILITY,
    _VISIBILITY_CELLS,
    EMPTY_VALUE,
    VARIATION_EXTRA_KEYS,
    _Columns,
)
from catalog_sync.sources.magento_csv.stock_sources import source_item
from catalog_sync.sources.magento_csv.stream import _printable
from catalog_sync.sources.values import DateError, attribute_value, parse_date


class _Builder:
    """Turns the frames of one SKU into a CatalogProduct (or a Rejected)."""

    def __init__(
        self,
        columns: _Columns,
        warn: Callable[[SourceIssue], None],
        stocks: tuple[StockDef, ...] = (),
    ) -> None:
        self.c = columns
        self.warn = warn
        self.stocks = stocks  # MSI stocks (a Stock Sources file was read)

    def build(self, frames: list[tuple[bytes, int, bytes]]) -> CatalogProduct | Rejected | None:
        c = self.c
        issues: list[SourceIssue] = []
        rows: list[tuple[int, list[str]]] = []
        parents: dict[str, str] = {}
        bundles: dict[str, str] = {}
        sources: list[tuple[int, bytes]] = []
        for kind, line, payload in frames:
            if kind == _JOINED:
                rows.append((line, payload.decode("utf-8", "surrogateescape").split("\0")))
            elif kind == _ROW:
                rows.append((line, marshal.loads(payload)))
            elif kind == _SOURCE:
                sources.append((line, payload))
            elif kind in (_LINK, _BUNDLE_LINK):
                parent = payload.decode("utf-8", "surrogateescape")
                (parents if kind == _LINK else bundles).setdefault(parent.lower(), parent)
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
        product.bundle_parents = tuple(bundles.values())
        if self.stocks:
            items = [source_item(p, ln, sku, self.warn) for ln, p in sources]
            found = [i for i in items if i is not None]
            product.stocks = stock_levels(found, self.stocks, product.stock)
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
                bundle=_bundle(row[c.bundle_values]) if c.bundle_values >= 0 else (),
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
            except DateError:
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
        images, labels = self._images(row, is_global)
        attributes = self._attributes(row, is_global)
        return StoreValues(
            images=images,
            image_labels=labels,
            attributes=attributes,
            cleared=frozenset(cleared) if cleared else _NO_CLEARS,
            **kw,
        )

    def _images(self, row: list[str], is_global: bool) -> tuple[dict[str, str], dict[str, str]]:
        """Image roles and their labels; `__EMPTY__VALUE__` in a store view clears one."""
        images: dict[str, str] = {}
        labels: dict[str, str] = {}
        for i, li, role, _col in self.c.images:
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
        return images, labels

    def _attributes(self, row: list[str], is_global: bool) -> dict[str, tuple[str, ...]]:
        """`additional_attributes` and attribute columns; a store view may clear a value."""
        c = self.c
        attributes: dict[str, tuple[str, ...]] = {}
        if c.additional_attributes >= 0:
            cell = row[c.additional_attributes]
            if cell:
                for code, value in _additional_attributes(cell):
                    if value == EMPTY_VALUE:
                        if not is_global:
                            attributes[code] = ()
                        continue
                    vals = tuple(map(attribute_value, _multi(value)))
                    if vals or not is_global:
                        attributes[code] = vals
        for i, code, _col in c.attributes:
            cell = row[i]
            if cell:
                if cell == EMPTY_VALUE:
                    if not is_global:
                        attributes[code] = ()
                else:
                    attributes[code] = tuple(map(attribute_value, _multi(cell)))
        return attributes

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


# bundle_values `type`s that let the shopper choose several selections
MULTI_SELECT_TYPES = frozenset({"checkbox", "multi"})


def _bundle(cell: str) -> tuple[BundleOption, ...]:
    """`bundle_values`: selections joined by `|`, each `name=,type=,required=,sku=,
    price=,default=,default_qty=,price_type=[,can_change_qty=]`; the selections of
    one option share its `name`, in file order."""
    if not cell or cell == EMPTY_VALUE:
        return ()
    options: dict[str, tuple[dict[str, str], list[BundleSelection]]] = {}
    for n, entry in enumerate(cell.split("|"), start=1):
        if not entry.strip():
            continue
        pairs = dict(
            (k.strip(), v.strip())
            for k, eq, v in (p.partition("=") for p in entry.split(","))
            if eq
        )
        sku, title = pairs.get("sku", ""), pairs.get("name", "")
        if not sku or not title:
            raise _RowError("bundle_values", f"selection {n} needs name= and sku=: {entry!r}")
        try:
            qty = _number(pairs["default_qty"]) if pairs.get("default_qty") else None
            selection = BundleSelection(
                sku=sku,
                qty=qty,
                user_defined_qty=_flag(pairs.get("can_change_qty") or "0", "bundle_values"),
                default=_flag(pairs.get("default") or "0", "bundle_values"),
            )
        except ValueError as exc:
            raise _RowError("bundle_values", f"selection {n}: {exc}") from None
        options.setdefault(title, (pairs, []))[1].append(selection)
    return tuple(
        BundleOption(
            title=title,
            required=_flag(first.get("required") or "0", "bundle_values"),
            multi=first.get("type", "").lower() in MULTI_SELECT_TYPES,
            selections=tuple(selections),
        )
        for title, (first, selections) in options.items()
    )
