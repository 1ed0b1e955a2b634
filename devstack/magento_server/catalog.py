"""The fake Magento's catalog: CatalogProducts read from an export CSV, presented in Magento's REST JSON shapes (ids, options, categories, stock)."""

from __future__ import annotations

import pickle
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from catalog_sync.catalog import (
    ALL_CUSTOMER_GROUPS,
    VISIBILITIES,
    CatalogProduct,
    StoreValues,
    TierPrice,
)
from catalog_sync.feeds.attributes import derive_label
from catalog_sync.records import Rejected
from catalog_sync.sources.values import DateError, parse_date

DEFAULT_TOKEN = "local-magento-token"
ROOT_CATEGORY = "Default Category"
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
# Attributes served as plain text (the rest of `attributes` are select / multiselect).
DEFAULT_TEXT_ATTRIBUTES = frozenset(
    {"has_options", "required_options", "news_from_date", "news_to_date", "msrp"}
)
# Text attributes of type decimal: REST gives their values with six places.
DEFAULT_DECIMAL_ATTRIBUTES = frozenset({"msrp"})
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
        self.decimal_attributes = DEFAULT_DECIMAL_ATTRIBUTES
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
        self._stock: list[tuple[_Rec, dict[str, Any]]] | None = None
        self.deleted_options: dict[str, set[str]] = {}
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
            gone = self.deleted_options.get(code, ())
            options = [{"label": " ", "value": ""}] + [
                {"label": label, "value": str(oid)}
                for label, oid in self.options.get(code, {}).items()
                if label not in gone
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

    def stock_items(self) -> list[tuple[_Rec, dict[str, Any]]]:
        """Every stock item with its product, by product id (built once per catalog)."""
        if self._stock is None:
            pairs = [(rec, self.stock_item(rec, rec.product())) for rec in self.recs]
            self._stock = [(rec, item) for rec, item in pairs if item is not None]
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
            "show_default_notification_message": False,
            "use_config_min_qty": True,
            "min_qty": 0,
            "use_config_min_sale_qty": 1,
            "min_sale_qty": 1,
            "use_config_max_sale_qty": True,
            "max_sale_qty": 10000,
            "use_config_backorders": True,
            "backorders": 0,
            "use_config_qty_increments": True,
            "qty_increments": 1,
            "use_config_enable_qty_inc": True,
            "enable_qty_increments": False,
            "is_decimal_divided": False,
            "stock_status_changed_auto": 0,
        }

    def _bundle_options(self, rec: _Rec, p: CatalogProduct) -> list[dict[str, Any]]:
        """`bundle_product_options` as Magento's REST API gives them."""
        out = []
        for i, option in enumerate(p.bundle, 1):
            option_id = rec.id * 100 + i
            out.append(
                {
                    "option_id": option_id,
                    "title": option.title,
                    "required": option.required,
                    "type": "checkbox" if option.multi else "select",
                    "position": i,
                    "sku": p.sku,
                    "product_links": [
                        {
                            "id": str(option_id * 100 + n),
                            "sku": sel.sku,
                            "option_id": option_id,
                            "qty": sel.qty,
                            "position": n,
                            "is_default": sel.default,
                            "price": 0,
                            "price_type": 0,
                            "can_change_quantity": int(sel.user_defined_qty),
                        }
                        for n, sel in enumerate(option.selections, 1)
                    ],
                }
            )
        return out

    def item(self, rec: _Rec, p: CatalogProduct, view: str | None) -> dict[str, Any]:
        """The product as `GET /V1/products` lists it in `view` (None: `/rest/all`)."""
        v = p.values if view is None else p.values_for(view)
        item = self._main(rec, p, v)
        item["extension_attributes"] = self._extension(rec, p)
        item["product_links"] = self._links(p)
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
        item["tier_prices"] = [self._tier(t) for t in p.tier_prices]
        item["custom_attributes"] = self._custom(p, v)
        return item

    def _main(self, rec: _Rec, p: CatalogProduct, v: StoreValues) -> dict[str, Any]:
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
        elif p.product_type in ("configurable", "bundle"):
            item["price"] = 0  # Magento's answer for a parent or dynamic bundle without a price
        if v.enabled is not None:
            item["status"] = 1 if v.enabled else 2
        if v.visibility is not None:
            item["visibility"] = VISIBILITIES.index(v.visibility) + 1
        if v.weight is not None:
            item["weight"] = v.weight
        return item

    def _extension(self, rec: _Rec, p: CatalogProduct) -> dict[str, Any]:
        websites = self.websites if p.websites is None else p.websites
        ext: dict[str, Any] = {
            "website_ids": [self.websites[w] for w in websites],
            "category_links": [
                {"position": i, "category_id": str(self.categories[path])}
                for i, path in enumerate(p.categories)
            ],
        }
        if p.product_type == "configurable":
            codes = dict.fromkeys(code for variant in p.variants for code, _ in variant.options)
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
        if p.product_type == "bundle":
            ext["bundle_product_options"] = self._bundle_options(rec, p)
        return ext

    def _links(self, p: CatalogProduct) -> list[dict[str, Any]]:
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
        return links

    def _tier(self, t: TierPrice) -> dict[str, Any]:
        if t.customer_group == ALL_CUSTOMER_GROUPS:
            group = ALL_GROUPS_ID
        else:
            group = next(
                (gid for gid, code in CUSTOMER_GROUPS.items() if code == t.customer_group), 1
            )
        return {
            "customer_group_id": group,
            "qty": t.qty,
            "value": t.value,
            "extension_attributes": {"website_id": self.websites.get(t.website or "", 0)},
        }

    def _custom(self, p: CatalogProduct, v: StoreValues) -> list[dict[str, Any]]:
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
        if p.product_type == "bundle":  # 0: dynamic price (from the selections), 1: fixed
            fixed = p.values.price is not None
            custom.append({"attribute_code": "price_type", "value": "1" if fixed else "0"})
        for role, path in v.images.items():
            custom.append({"attribute_code": IMAGE_CODES[role], "value": path})
        for role, label in v.image_labels.items():
            custom.append({"attribute_code": LABEL_CODES[role], "value": label})
        for code, vals in v.attributes.items():
            if self.attribute_kind(code) == "text":
                decimal = code in self.decimal_attributes
                value = "|".join(rest_text(x, decimal) for x in vals)
            else:
                value = ",".join(str(self.options[code][label]) for label in vals)
            custom.append({"attribute_code": code, "value": value})
        custom.append(
            {
                "attribute_code": "category_ids",
                "value": [str(self.categories[path]) for path in p.categories],
            }
        )
        return custom

    def _link(self, sku: str, link_type: str, linked: str, pos: int) -> dict[str, Any]:
        target = self.by_sku.get(linked.lower())
        return {
            "sku": sku,
            "link_type": link_type,
            "linked_product_sku": linked,
            "linked_product_type": target.type_id if target else "simple",
            "position": pos,
        }


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def rest_text(value: str, decimal: bool) -> str:
    """A text attribute's value as Magento's REST API gives it: a decimal attribute's
    value with six places (`12.000000`), a date as `YYYY-MM-DD HH:MM:SS`."""
    if decimal and _NUMBER.fullmatch(value):
        return f"{float(value):.6f}"
    if value[:1].isdigit() and any(sep in value for sep in "/-."):
        try:
            return parse_date(value).strftime(TS_FORMAT)
        except DateError:
            pass
    return value
