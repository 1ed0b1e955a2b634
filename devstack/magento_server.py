"""A local Magento 2 REST API (a test double) serving a catalog read from a product export CSV.

The CSV is read with `MagentoCsvSource` into `CatalogProduct`s, which are presented in
Magento's REST JSON shapes (magento-formats.md section B):

- `GET /rest/{all|<store>}/V1/products?searchCriteria...` (filter_groups / filters /
  condition_type eq, neq, gt, gteq, lt, lteq, in, nin, like, nlike, null, notnull, finset;
  sortOrders; pageSize / currentPage; `fields=` is ignored) and `/V1/products/{sku}`;
- `/V1/products/attributes/{code}` and `/V1/products/attributes?searchCriteria...`
  (select / multiselect values are option ids; labels -> ids assigned deterministically);
- `/V1/categories` (the tree: Root Catalog (1) > Default Category (2) > ...);
- `/V1/stockItems/lowStock?scopeId=0&qty=N&pageSize=&currentPage=` and `/V1/stockItems/{sku}`;
- `/V1/store/websites`, `/V1/store/storeViews`, `/V1/products/attribute-sets/sets/list`,
  `/V1/customerGroups/{id}`.

Store views: `/rest/all/V1` gives global values, `/rest/<store>/V1` (and `/rest/V1`, the
default view) the values as the view sees them. Entity, option, category and attribute ids
are assigned in file order and kept across `load()`s. `updated_at` is the load time; a
reload bumps it only for products whose data changed, `touch(sku)` bumps one.

Faults: `fail_next(status=503, times=2)` answers the next requests with an error
(`status=0` drops the connection); `repeat_last_page = True` answers a page past the end
with the last page again, as old Magento releases do.

What the CSV cannot carry is not invented: select attributes given as labels are served
with option ids; text attributes (`text_attributes`) and dates in attributes are passed
through as the CSV has them. The server keeps its catalog in memory, one compressed
record per product.

CLI: `python -m devstack.magento_server CSV --port 8788 --token T`.
"""

from __future__ import annotations

import contextlib
import math
import pickle
import re
import sys
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import click
import orjson

from catalog_sync.catalog import ALL_CUSTOMER_GROUPS, VISIBILITIES, CatalogProduct
from catalog_sync.errors import SourceError
from catalog_sync.feeds.attributes import derive_label
from catalog_sync.records import Rejected
from catalog_sync.sources.magento_csv import MagentoCsvSource

DEFAULT_TOKEN = "local-magento-token"
ROOT_CATEGORY = "Default Category"
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
# Attributes served as plain text (the rest of `attributes` are select / multiselect).
DEFAULT_TEXT_ATTRIBUTES = frozenset(
    {"has_options", "required_options", "news_from_date", "news_to_date", "msrp"}
)
# StoreValues scalar field -> REST custom attribute code (name/price/status/visibility/weight
# are top-level fields).
CUSTOM_SCALARS = {
    "description": "description",
    "short_description": "short_description",
    "url_key": "url_key",
    "meta_title": "meta_title",
    "meta_keywords": "meta_keyword",
    "meta_description": "meta_description",
    "special_price": "special_price",
    "special_from": "special_from_date",
    "special_to": "special_to_date",
}
IMAGE_CODES = {"base": "image", "small": "small_image", "thumbnail": "thumbnail"}
IMAGE_CODES["swatch"] = "swatch_image"
LABEL_CODES = {
    "base": "image_label",
    "small": "small_image_label",
    "thumbnail": "thumbnail_label",
    "swatch": "swatch_image_label",
}
TAX_CLASSES = {"None": 0, "Taxable Goods": 2}
CUSTOMER_GROUPS = {0: "NOT LOGGED IN", 1: "General", 2: "Wholesale", 3: "Retailer"}
ALL_GROUPS_ID = 32000
_INDEXED = {"entity_id", "id", "sku", "type_id", "updated_at", "created_at"}
_BRACKETS = re.compile(r"\[([^\]]*)\]")


@dataclass(slots=True)
class _Rec:
    id: int
    sku: str
    type_id: str
    created_at: str
    updated_at: str
    blob: bytes  # zlib(pickle(CatalogProduct)), line=None

    def product(self) -> CatalogProduct:
        product: CatalogProduct = pickle.loads(zlib.decompress(self.blob))
        return product


class _HttpError(Exception):
    def __init__(self, status: int, message: str, parameters: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameters = parameters


class _Catalog:
    """The served catalog: product records and the id maps derived from it."""

    def __init__(
        self,
        products: Iterable[CatalogProduct],
        previous: _Catalog | None,
        store_views: Sequence[str],
        text_attributes: frozenset[str],
        now: str,
    ) -> None:
        prev = previous
        self.text_attributes = text_attributes
        self.options: dict[str, dict[str, int]] = (
            {c: dict(o) for c, o in prev.options.items()} if prev else {}
        )
        self.multi: set[str] = set()
        self.attribute_ids: dict[str, int] = dict(prev.attribute_ids) if prev else {}
        self.categories: dict[tuple[str, ...], int] = dict(prev.categories) if prev else {}
        self.websites: dict[str, int] = dict(prev.websites) if prev else {"base": 1}
        self.attribute_sets: dict[str, int] = dict(prev.attribute_sets) if prev else {"Default": 4}
        self.views: dict[str, int] = dict(prev.views) if prev else {}
        for view in store_views:
            self.views.setdefault(view, len(self.views) + 1)
        self._next_option: int = prev._next_option if prev else 100
        self.options.setdefault("tax_class_id", dict(TAX_CLASSES))
        self.recs: list[_Rec] = []
        self.by_sku: dict[str, _Rec] = {}
        self.by_id: dict[int, _Rec] = {}
        self.rejected: list[Rejected] = []
        self._stock: list[dict[str, Any]] | None = None
        next_id = max(prev.by_id, default=0) + 1 if prev else 1
        for product in products:
            key = product.sku.lower()
            if key in self.by_sku:
                continue
            product.line = None
            self._register(product)
            blob = zlib.compress(pickle.dumps(product, protocol=pickle.HIGHEST_PROTOCOL), 1)
            old = prev.by_sku.get(key) if prev else None
            if old is not None:
                changed = old.blob != blob and old.product() != product
                rec = _Rec(
                    old.id,
                    product.sku,
                    product.product_type,
                    old.created_at,
                    now if changed else old.updated_at,
                    blob,
                )
            else:
                rec = _Rec(next_id, product.sku, product.product_type, now, now, blob)
                next_id += 1
            self.recs.append(rec)
            self.by_sku[key] = rec
            self.by_id[rec.id] = rec
        self.recs.sort(key=lambda r: r.id)
        self.tree = self._tree()

    def _option(self, code: str, label: str) -> int:
        opts = self.options.setdefault(code, {})
        oid = opts.get(label)
        if oid is None:
            oid = opts[label] = self._next_option
            self._next_option += 1
        return oid

    def _attribute_id(self, code: str) -> int:
        aid = self.attribute_ids.get(code)
        if aid is None:
            aid = self.attribute_ids[code] = 200 + len(self.attribute_ids)
        return aid

    def _register(self, p: CatalogProduct) -> None:
        self.attribute_sets.setdefault(p.attribute_set, 100 + len(self.attribute_sets))
        for w in p.websites or ():
            self.websites.setdefault(w, len(self.websites) + 1)
        for view in p.overrides:
            self.views.setdefault(view, len(self.views) + 1)
        for path in p.categories:
            for i in range(1, len(path) + 1):
                self.categories.setdefault(path[:i], 3 + len(self.categories))
        for values in (p.values, *p.overrides.values()):
            if values.tax_class:
                self._option("tax_class_id", values.tax_class)
            for code, vals in values.attributes.items():
                self._attribute_id(code)
                if code in self.text_attributes:
                    continue
                if len(vals) > 1:
                    self.multi.add(code)
                for label in vals:
                    self._option(code, label)
        for code in p.variant_labels:
            self._attribute_id(code)
        for variant in p.variants:
            for code, label in variant.options:
                self._attribute_id(code)
                if code not in self.text_attributes:
                    self._option(code, label)

    def _tree(self) -> dict[str, Any]:
        def node(cid: int, parent: int, name: str, level: int, pos: int) -> dict[str, Any]:
            return {
                "id": cid,
                "parent_id": parent,
                "name": name,
                "is_active": True,
                "position": pos,
                "level": level,
                "product_count": 0,
                "children_data": [],
            }

        root = node(1, 0, "Root Catalog", 0, 0)
        default = node(2, 1, ROOT_CATEGORY, 1, 1)
        root["children_data"].append(default)
        nodes: dict[tuple[str, ...], dict[str, Any]] = {(): default}
        for path, cid in sorted(self.categories.items(), key=lambda kv: kv[1]):
            parent = nodes.get(path[:-1])
            if parent is None:  # pragma: no cover - prefixes are registered first
                continue
            child = node(
                cid, parent["id"], path[-1], len(path) + 1, len(parent["children_data"]) + 1
            )
            parent["children_data"].append(child)
            nodes[path] = child
        return root

    # -- JSON shapes ---------------------------------------------------------------

    def attribute_kind(self, code: str) -> str:
        if code == "tax_class_id":
            return "select"
        if code in self.text_attributes or code not in self.options:
            return "text"
        return "multiselect" if code in self.multi else "select"

    def attribute(self, code: str) -> dict[str, Any]:
        if code != "tax_class_id" and code not in self.attribute_ids:
            raise _HttpError(
                404,
                'The attribute with a "%1" attributeCode doesn\'t exist. '
                "Verify the attribute and try again.",
                [code],
            )
        kind = self.attribute_kind(code)
        options: list[dict[str, str]] = []
        if kind != "text":
            options = [{"label": " ", "value": ""}] + [
                {"label": label, "value": str(oid)}
                for label, oid in self.options.get(code, {}).items()
            ]
        return {
            "attribute_id": self.attribute_ids.get(code, 172),
            "attribute_code": code,
            "frontend_input": kind,
            "default_frontend_label": code.replace("_", " ").title(),
            "is_required": False,
            "is_user_defined": True,
            "scope": "global",
            "options": options,
        }

    def stock_items(self) -> list[dict[str, Any]]:
        """Every stock item, by product id (built once per catalog)."""
        if self._stock is None:
            items = [self.stock_item(rec, rec.product()) for rec in self.recs]
            self._stock = [item for item in items if item is not None]
        return self._stock

    def stock_item(self, rec: _Rec, p: CatalogProduct) -> dict[str, Any] | None:
        s = p.stock
        if s is None:
            return None
        return {
            "item_id": rec.id,
            "product_id": rec.id,
            "stock_id": 1,
            "qty": s.qty,
            "is_in_stock": s.is_in_stock,
            "is_qty_decimal": False,
            "manage_stock": True if s.manage_stock is None else s.manage_stock,
            "use_config_manage_stock": s.manage_stock is None,
            "notify_stock_qty": 1 if s.notify_qty is None else s.notify_qty,
            "use_config_notify_stock_qty": s.notify_qty is None,
            "low_stock_date": None,
        }

    def item(self, rec: _Rec, p: CatalogProduct, view: str | None) -> dict[str, Any]:
        v = p.values if view is None else p.values_for(view)
        item: dict[str, Any] = {
            "id": rec.id,
            "sku": p.sku,
            "attribute_set_id": self.attribute_sets[p.attribute_set],
            "type_id": p.product_type,
            "created_at": rec.created_at,
            "updated_at": rec.updated_at,
        }
        if v.name is not None:
            item["name"] = v.name
        if v.price is not None:
            item["price"] = v.price
        if v.enabled is not None:
            item["status"] = 1 if v.enabled else 2
        if v.visibility is not None:
            item["visibility"] = VISIBILITIES.index(v.visibility) + 1
        if v.weight is not None:
            item["weight"] = v.weight
        websites = self.websites if p.websites is None else p.websites
        ext: dict[str, Any] = {
            "website_ids": [self.websites[w] for w in websites],
            "category_links": [
                {"position": i, "category_id": str(self.categories[path])}
                for i, path in enumerate(p.categories)
            ],
        }
        if p.product_type == "configurable":
            codes: dict[str, None] = {}
            for variant in p.variants:
                for code, _label in variant.options:
                    codes.setdefault(code)
            ext["configurable_product_options"] = [
                {
                    "id": rec.id * 10 + i,
                    "attribute_id": str(self.attribute_ids[code]),
                    "label": p.variant_labels.get(code) or derive_label(code),
                    "position": i,
                    "values": [
                        {"value_index": self.options[code][label]}
                        for label in dict.fromkeys(
                            lb for variant in p.variants for c, lb in variant.options if c == code
                        )
                    ]
                    if code in self.options
                    else [],
                    "product_id": rec.id,
                }
                for i, code in enumerate(codes)
            ]
            ext["configurable_product_links"] = [
                child.id
                for variant in p.variants
                if (child := self.by_sku.get(variant.sku.lower())) is not None
            ]
        item["extension_attributes"] = ext
        links: list[dict[str, Any]] = []
        for link_type, skus in (
            ("related", p.links.related),
            ("crosssell", p.links.crosssell),
            ("upsell", p.links.upsell),
        ):
            for pos, linked in enumerate(skus, 1):
                links.append(self._link(p.sku, link_type, linked, pos))
        for pos, g in enumerate(p.grouped, 1):
            link = self._link(p.sku, "associated", g.sku, pos)
            if g.qty is not None:
                link["extension_attributes"] = {"qty": g.qty}
            links.append(link)
        item["product_links"] = links
        item["options"] = []
        item["media_gallery_entries"] = [
            {
                "id": rec.id * 100 + g.position,
                "media_type": "image",
                "label": g.label,
                "position": g.position,
                "disabled": g.hidden,
                "types": [IMAGE_CODES[r] for r, path in v.images.items() if path == g.path],
                "file": g.path,
            }
            for g in p.gallery
        ]
        item["tier_prices"] = [
            {
                "customer_group_id": ALL_GROUPS_ID
                if t.customer_group == ALL_CUSTOMER_GROUPS
                else next(
                    (gid for gid, code in CUSTOMER_GROUPS.items() if code == t.customer_group), 1
                ),
                "qty": t.qty,
                "value": t.value,
                "extension_attributes": {"website_id": self.websites.get(t.website or "", 0)},
            }
            for t in p.tier_prices
        ]
        custom: list[dict[str, Any]] = []
        for fname, code in CUSTOM_SCALARS.items():
            value = getattr(v, fname)
            if value is None:
                continue
            if isinstance(value, datetime):
                value = value.strftime(TS_FORMAT)
            elif isinstance(value, float):
                value = f"{value:.6f}"
            custom.append({"attribute_code": code, "value": value})
        if v.tax_class is not None:
            tax_id = self.options["tax_class_id"][v.tax_class]
            custom.append({"attribute_code": "tax_class_id", "value": str(tax_id)})
        for role, path in v.images.items():
            custom.append({"attribute_code": IMAGE_CODES[role], "value": path})
        for role, label in v.image_labels.items():
            custom.append({"attribute_code": LABEL_CODES[role], "value": label})
        for code, vals in v.attributes.items():
            if self.attribute_kind(code) == "text":
                value = "|".join(vals)
            else:
                value = ",".join(str(self.options[code][label]) for label in vals)
            custom.append({"attribute_code": code, "value": value})
        custom.append(
            {
                "attribute_code": "category_ids",
                "value": [str(self.categories[path]) for path in p.categories],
            }
        )
        item["custom_attributes"] = custom
        return item

    def _link(self, sku: str, link_type: str, linked: str, pos: int) -> dict[str, Any]:
        target = self.by_sku.get(linked.lower())
        return {
            "sku": sku,
            "link_type": link_type,
            "linked_product_sku": linked,
            "linked_product_type": target.type_id if target else "simple",
            "position": pos,
        }


# -- searchCriteria ----------------------------------------------------------------------


def parse_query(query: str) -> dict[str, Any]:
    """`a[b][0][c]=v&x=y` -> {"a": {"b": {"0": {"c": "v"}}}, "x": "y"}."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        head, _, rest = key.partition("[")
        parts = [head] + (_BRACKETS.findall("[" + rest) if rest else [])
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value
    return out


def _listed(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [node[k] for k in sorted(node, key=lambda k: int(k) if k.isdigit() else 0)]
    return []


@dataclass(frozen=True)
class Criteria:
    groups: tuple[tuple[tuple[str, str, str], ...], ...]  # ((field, condition, value), ...)
    sort: tuple[tuple[str, str], ...]
    page_size: int | None
    current_page: int

    @classmethod
    def parse(cls, query: dict[str, Any], *, required: bool = True) -> Criteria:
        sc = query.get("searchCriteria")
        if sc is None:
            if required:
                raise _HttpError(
                    400,
                    '"%fieldName" is required. Enter and try again.',
                    {"fieldName": "searchCriteria"},
                )
            sc = {}
        if not isinstance(sc, dict):
            sc = {}
        groups = []
        for group in _listed(sc.get("filter_groups")):
            filters = []
            for f in _listed(group.get("filters") if isinstance(group, dict) else None):
                if not isinstance(f, dict) or "field" not in f:
                    raise _HttpError(400, "A filter needs a field.")
                cond = (f.get("condition_type") or "eq").lower()
                if cond not in _CONDITIONS:
                    raise _HttpError(400, f'Invalid condition type "{cond}".')
                filters.append((f["field"], cond, f.get("value", "")))
            if filters:
                groups.append(tuple(filters))
        sort = tuple(
            (o.get("field", "entity_id"), (o.get("direction") or "ASC").upper())
            for o in _listed(sc.get("sortOrders"))
            if isinstance(o, dict)
        )
        try:
            size = int(sc["pageSize"]) if sc.get("pageSize") not in (None, "") else None
            page = int(sc.get("currentPage") or 1)
        except ValueError:
            raise _HttpError(400, "pageSize and currentPage must be integers.") from None
        return cls(tuple(groups), sort, size if size and size > 0 else None, max(1, page))

    def echo(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "filter_groups": [
                {"filters": [{"field": f, "value": v, "condition_type": c} for f, c, v in g]}
                for g in self.groups
            ]
        }
        if self.sort:
            out["sort_orders"] = [{"field": f, "direction": d} for f, d in self.sort]
        if self.page_size is not None:
            out["page_size"] = self.page_size
        out["current_page"] = self.current_page
        return out


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _cmp_key(value: Any) -> tuple[int, float, str]:
    n = _num(value)
    if n is not None and not isinstance(value, bool):
        return (0, n, "")
    return (1, 0.0, "" if value is None else str(value).lower())


def _like(pattern: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in pattern.lower().split("%")]
    return re.compile(".*".join(p.replace("_", ".") for p in parts) + r"\Z", re.S)


def _test(actual: Any, cond: str, expected: str) -> bool:
    return _predicate(cond, expected)(actual)


def _predicate(cond: str, expected: str) -> Callable[[Any], bool]:
    """A test of a field value against one filter, compiled once per request."""

    def values(actual: Any) -> list[Any]:
        return [v for v in (actual if isinstance(actual, list) else [actual]) if v is not None]

    if cond == "null":
        return lambda actual: actual in (None, "", [])
    if cond == "notnull":
        return lambda actual: actual not in (None, "", [])
    if cond in ("in", "nin"):
        wanted = {_cmp_key(x.strip()) for x in expected.split(",")}
        hit_in = cond == "in"
        return lambda actual: any(_cmp_key(v) in wanted for v in values(actual)) == hit_in
    if cond in ("finset", "nfinset"):
        hit_fs = cond == "finset"
        needle = expected.strip()
        return lambda actual: any(needle in str(v).split(",") for v in values(actual)) == hit_fs
    if cond in ("like", "nlike"):
        rx = _like(expected)
        hit_like = cond == "like"
        return lambda actual: any(rx.match(str(v).lower()) for v in values(actual)) == hit_like
    exp = _cmp_key(expected)
    if cond == "neq":
        return lambda actual: all(_cmp_key(v) != exp for v in values(actual))
    op = _CMP[cond]
    return lambda actual: any(op(_cmp_key(v), exp) for v in values(actual))


_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "gt": lambda a, b: a > b,
    "gteq": lambda a, b: a >= b,
    "from": lambda a, b: a >= b,
    "moreq": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lteq": lambda a, b: a <= b,
    "to": lambda a, b: a <= b,
}
_CONDITIONS = {*_CMP, "neq", "in", "nin", "like", "nlike", "null", "notnull", "finset", "nfinset"}


def _field(item: dict[str, Any], name: str) -> Any:
    if name == "entity_id":
        name = "id"
    if name in item:
        return item[name]
    for ca in item.get("custom_attributes", ()):
        if ca.get("attribute_code") == name:
            return ca.get("value")
    ext = item.get("extension_attributes") or {}
    return ext.get(name)


def _rec_field(rec: _Rec, name: str) -> Any:
    if name in ("entity_id", "id"):
        return rec.id
    return getattr(rec, name)


def _page(rows: list[Any], c: Criteria, repeat_last: bool) -> list[Any]:
    if c.page_size is None:
        return rows
    start = (c.current_page - 1) * c.page_size
    if start >= len(rows) and repeat_last and rows:
        start = (math.ceil(len(rows) / c.page_size) - 1) * c.page_size
    return rows[start : start + c.page_size]


# -- the server ------------------------------------------------------------------------


class MagentoApiServer:
    """A local Magento REST API over a product export CSV. See the module docstring."""

    def __init__(
        self,
        csv_path: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        store_views: Sequence[str] = ("default",),
        text_attributes: Iterable[str] = DEFAULT_TEXT_ATTRIBUTES,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.token = token
        self.store_views = tuple(store_views)
        self.text_attributes = frozenset(text_attributes)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.repeat_last_page = False
        self.requests: deque[str] = deque(maxlen=100_000)  # request targets, for tests
        self._lock = threading.Lock()
        self._faults: deque[tuple[int, float | None, str | None]] = deque()
        self._cache: dict[tuple[Any, ...], list[_Rec]] = {}
        self._catalog: _Catalog | None = None
        self._connections: set[Any] = set()
        self._corrupt: dict[str, dict[str, Any]] = {}
        self.load(csv_path)
        self._server = _Server((host, port), _Handler)
        self._server.api = self
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def catalog(self) -> _Catalog:
        assert self._catalog is not None
        return self._catalog

    def _now(self) -> str:
        return self.clock().astimezone(UTC).strftime(TS_FORMAT)

    def load(self, csv_path: str | Path) -> None:
        """(Re)load the catalog from a CSV; ids are kept, changed products get a new updated_at."""
        source = MagentoCsvSource(str(csv_path))
        rejected: list[Rejected] = []

        def products() -> Iterable[CatalogProduct]:
            for entry in source.read():
                if isinstance(entry, CatalogProduct):
                    yield entry
                else:
                    rejected.append(entry)

        catalog = _Catalog(
            products(), self._catalog, self.store_views, self.text_attributes, self._now()
        )
        catalog.rejected = rejected
        with self._lock:
            self._catalog = catalog
            self._cache.clear()

    def touch(self, sku: str, at: datetime | None = None) -> None:
        """Bump a product's updated_at (to `at`, default now)."""
        stamp = (at or self.clock()).astimezone(UTC).strftime(TS_FORMAT)
        with self._lock:
            rec = self.catalog.by_sku.get(sku.lower())
            if rec is None:
                raise KeyError(sku)
            rec.updated_at = stamp
            self._cache.clear()

    def fail_next(
        self,
        status: int = 503,
        times: int = 1,
        *,
        retry_after: float | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next `times` requests (whose target contains `path_contains`) with
        `status` (0: drop the connection without an answer)."""
        with self._lock:
            for _ in range(times):
                self._faults.append((status, retry_after, path_contains))

    def corrupt(self, sku: str, field: str, value: Any) -> None:
        """Serve `field` (a top-level item field) of `sku` as `value` in every scope."""
        with self._lock:
            self._corrupt.setdefault(sku.lower(), {})[field] = value

    def _item(self, catalog: _Catalog, rec: _Rec, view: str | None) -> dict[str, Any]:
        item = catalog.item(rec, rec.product(), view)
        bad = self._corrupt.get(rec.sku.lower())
        if bad:
            item.update(bad)
        return item

    def _take_fault(self, target: str) -> tuple[int, float | None] | None:
        with self._lock:
            for i, (status, retry_after, needle) in enumerate(self._faults):
                if needle is None or needle in target:
                    del self._faults[i]
                    return status, retry_after
        return None

    def start(self) -> MagentoApiServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="magento-api",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(2)
        self._server.server_close()

    def __enter__(self) -> MagentoApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests ----------------------------------------------------------------------

    def handle(self, method: str, target: str, auth: str | None) -> tuple[int, Any, dict[str, str]]:
        self.requests.append(target)
        fault = self._take_fault(target)
        if fault is not None:
            status, retry_after = fault
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return status, {"message": f"injected fault {status}"}, headers
        if auth != f"Bearer {self.token}":
            return (
                401,
                {
                    "message": "The consumer isn't authorized to access %resources.",
                    "parameters": {"resources": "Magento_Catalog::products"},
                },
                {},
            )
        if method != "GET":
            raise _HttpError(405, "Request does not match any route.")
        split = urlsplit(target)
        path = unquote(split.path)
        query = parse_query(split.query)
        m = re.fullmatch(r"/rest(?:/([^/]+))?/V1/(.+)", path)
        if not m:
            raise _HttpError(404, "Request does not match any route.")
        scope, route = m.group(1), m.group(2)
        catalog = self.catalog
        view: str | None
        if scope == "all":
            view = None
        elif scope is None:
            view = "default"
        elif scope in catalog.views or scope == "default":
            view = scope
        else:
            raise _HttpError(400, "Requested store is not found")
        return 200, self._route(catalog, route, view, query), {}

    def _route(self, catalog: _Catalog, route: str, view: str | None, query: dict[str, Any]) -> Any:
        if route == "products":
            return self._products(catalog, view, Criteria.parse(query))
        if route == "products/attributes":
            c = Criteria.parse(query)
            codes = sorted(catalog.attribute_ids, key=catalog.attribute_ids.__getitem__)
            items = [catalog.attribute(code) for code in ("tax_class_id", *codes)]
            return self._list(items, c)
        if route.startswith("products/attributes/"):
            return catalog.attribute(route[len("products/attributes/") :])
        if route.startswith("products/attribute-sets/sets/list"):
            c = Criteria.parse(query)
            items = [
                {
                    "attribute_set_id": sid,
                    "attribute_set_name": name,
                    "sort_order": 0,
                    "entity_type_id": 4,
                }
                for name, sid in sorted(catalog.attribute_sets.items(), key=lambda kv: kv[1])
            ]
            return self._list(items, c)
        if route.startswith("products/"):
            rec = catalog.by_sku.get(route[len("products/") :].lower())
            if rec is None:
                raise _HttpError(
                    404,
                    "The product that was requested doesn't exist. Verify the product and try again.",
                )
            return self._item(catalog, rec, view)
        if route == "categories":
            return catalog.tree if view is None else catalog.tree["children_data"][0]
        if route == "store/websites":
            return [{"id": 0, "code": "admin", "name": "Admin", "default_group_id": 0}] + [
                {"id": wid, "code": code, "name": code.title(), "default_group_id": wid}
                for code, wid in sorted(catalog.websites.items(), key=lambda kv: kv[1])
            ]
        if route == "store/storeViews":
            return [
                {
                    "id": 0,
                    "code": "admin",
                    "name": "Admin",
                    "website_id": 0,
                    "store_group_id": 0,
                    "is_active": 1,
                }
            ] + [
                {
                    "id": sid,
                    "code": code,
                    "name": code,
                    "website_id": 1,
                    "store_group_id": 1,
                    "is_active": 1,
                }
                for code, sid in sorted(catalog.views.items(), key=lambda kv: kv[1])
            ]
        if route == "stockItems/lowStock":
            return self._low_stock(catalog, query)
        if route.startswith("stockItems/"):
            rec = catalog.by_sku.get(route[len("stockItems/") :].lower())
            item = catalog.stock_item(rec, rec.product()) if rec else None
            if item is None:
                raise _HttpError(404, 'The Product with the "%1" SKU doesn\'t exist.', [route[11:]])
            return item
        if route.startswith("customerGroups/"):
            gid = route[len("customerGroups/") :]
            if gid.isdigit() and int(gid) in CUSTOMER_GROUPS:
                return {"id": int(gid), "code": CUSTOMER_GROUPS[int(gid)], "tax_class_id": 3}
            raise _HttpError(404, "No such entity with id = %1", [gid])
        raise _HttpError(404, "Request does not match any route.")

    def _list(self, items: list[dict[str, Any]], c: Criteria) -> dict[str, Any]:
        groups = [[(f, _predicate(cd, v)) for f, cd, v in g] for g in c.groups]
        rows = [it for it in items if all(any(t(_field(it, f)) for f, t in g) for g in groups)]
        for fname, direction in reversed(c.sort):

            def item_key(it: dict[str, Any], f: str = fname) -> tuple[int, float, str]:
                return _cmp_key(_field(it, f))

            rows.sort(key=item_key, reverse=direction == "DESC")
        return {
            "items": _page(rows, c, self.repeat_last_page),
            "search_criteria": c.echo(),
            "total_count": len(rows),
        }

    def _selected(self, catalog: _Catalog, view: str | None, c: Criteria) -> list[_Rec]:
        key = (id(catalog), view, c.groups, c.sort)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        items: dict[int, dict[str, Any]] = {}

        def value(rec: _Rec, name: str) -> Any:
            if name in _INDEXED:
                return _rec_field(rec, name)
            item = items.get(rec.id)
            if item is None:
                item = items[rec.id] = catalog.item(rec, rec.product(), view)
            return _field(item, name)

        groups = [[(f, _predicate(cd, v)) for f, cd, v in g] for g in c.groups]
        candidates = catalog.recs
        for g in c.groups:  # a group of id / sku lookups: use the indexes
            if all(f in ("entity_id", "id", "sku") and cd in ("eq", "in") for f, cd, _v in g):
                found: dict[int, _Rec] = {}
                for f, _cd, v in g:
                    for x in v.split(","):
                        x = x.strip()
                        if f == "sku":
                            rec = catalog.by_sku.get(x.lower())
                        else:
                            rec = catalog.by_id.get(int(x)) if x.isdigit() else None
                        if rec is not None:
                            found[rec.id] = rec
                candidates = [found[i] for i in sorted(found)]
                break
        rows = [
            rec for rec in candidates if all(any(t(value(rec, f)) for f, t in g) for g in groups)
        ]
        for fname, direction in reversed(c.sort):

            def rec_key(r: _Rec, f: str = fname) -> tuple[int, float, str]:
                return _cmp_key(value(r, f))

            rows.sort(key=rec_key, reverse=direction == "DESC")
        if candidates is not catalog.recs:
            return rows  # an index lookup: cheap, not cached
        with self._lock:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = rows
        return rows

    def _products(self, catalog: _Catalog, view: str | None, c: Criteria) -> dict[str, Any]:
        rows = self._selected(catalog, view, c)
        page = _page(rows, c, self.repeat_last_page)
        return {
            "items": [self._item(catalog, rec, view) for rec in page],
            "search_criteria": c.echo(),
            "total_count": len(rows),
        }

    def _low_stock(self, catalog: _Catalog, query: dict[str, Any]) -> dict[str, Any]:
        try:
            limit = float(query.get("qty") or 0)
            size = int(query.get("pageSize") or 0) or None
            page = max(1, int(query.get("currentPage") or 1))
        except ValueError:
            raise _HttpError(400, "qty, pageSize and currentPage must be numbers.") from None
        items = [item for item in catalog.stock_items() if item["qty"] < limit]
        c = Criteria((), (), size, page)
        return {
            "items": _page(items, c, self.repeat_last_page),
            "search_criteria": c.echo(),
            "total_count": len(items),
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    api: MagentoApiServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "catalogctl-magento/1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        api = self.server.api
        with api._lock:
            api._connections.add(self.connection)

    def finish(self) -> None:
        api = self.server.api
        with api._lock:
            api._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        try:
            status, body, headers = self.server.api.handle(
                method, self.path, self.headers.get("Authorization")
            )
        except _HttpError as exc:
            status, headers = exc.status, {}
            body = {"message": exc.message}
            if exc.parameters is not None:
                body["parameters"] = exc.parameters
        if status == 0:  # drop the connection
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        data = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")


@click.command()
@click.argument("csv_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8788, show_default=True, type=int)
@click.option("--token", default=DEFAULT_TOKEN, show_default=True)
@click.option("--store-view", "store_views", multiple=True, default=("default",), show_default=True)
def main(csv_path: str, host: str, port: int, token: str, store_views: tuple[str, ...]) -> None:
    """Serve CSV_PATH (a Magento product export) as a Magento REST API."""
    try:
        server = MagentoApiServer(
            csv_path, host=host, port=port, token=token, store_views=store_views
        )
    except SourceError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        orjson.dumps({"url": server.url, "products": len(server.catalog.recs)}).decode(), nl=True
    )
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
