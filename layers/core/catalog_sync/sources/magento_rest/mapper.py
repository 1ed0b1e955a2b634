"""REST JSON to `CatalogProduct`: option ids to labels, categories, stock, store-view overrides."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from catalog_sync.sources.magento_rest.source import MagentoRestSource

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from catalog_sync.catalog import (
    ALL_CUSTOMER_GROUPS,
    PRODUCT_TYPES,
    SCALAR_VALUES,
    VISIBILITIES,
    BundleOption,
    BundleSelection,
    CatalogProduct,
    GalleryImage,
    GroupedLink,
    Links,
    Stock,
    StoreValues,
    TierPrice,
    Variant,
)
from catalog_sync.records import Rejected, SourceIssue
from catalog_sync.sources.magento_rest.client import (
    _FetchFailedError,
    _Page,
    _quote,
    search_criteria,
)
from catalog_sync.sources.values import parse_date

TS_FORMAT = "%Y-%m-%d %H:%M:%S"
ALL_GROUPS_ID = 32000
LOW_STOCK_QTY = "99999999999"  # lowStock returns items with qty below this: all of them
SKU_CHUNK = 100
# custom attribute code -> (StoreValues field, kind)
_TEXT, _NUM, _DATE, _OPTION = range(4)
CUSTOM_SCALARS: dict[str, tuple[str, int]] = {
    "description": ("description", _TEXT),
    "short_description": ("short_description", _TEXT),
    "url_key": ("url_key", _TEXT),
    "meta_title": ("meta_title", _TEXT),
    "meta_keyword": ("meta_keywords", _TEXT),
    "meta_description": ("meta_description", _TEXT),
    "special_price": ("special_price", _NUM),
    "special_from_date": ("special_from", _DATE),
    "special_to_date": ("special_to", _DATE),
    "tax_class_id": ("tax_class", _OPTION),
}
IMAGE_ROLES = {"image": "base", "small_image": "small", "thumbnail": "thumbnail"}
IMAGE_ROLES["swatch_image"] = "swatch"
LABEL_ROLES = {
    "image_label": "base",
    "small_image_label": "small",
    "thumbnail_label": "thumbnail",
    "swatch_image_label": "swatch",
}
# Custom attributes the CSV source leaves out too (layout, system, REST-only).
SKIPPED_ATTRIBUTES = frozenset(
    {
        "category_ids",
        "url_path",
        "quantity_and_stock_status",
        "options_container",
        "gift_message_available",
        "msrp_display_actual_price_type",
        "msrp_enabled",
        "minimal_price",
        "custom_design",
        "custom_design_from",
        "custom_design_to",
        "custom_layout",
        "custom_layout_update",
        "custom_layout_update_file",
        "page_layout",
        "created_at",
        "updated_at",
        "price_type",
        "sku_type",
        "weight_type",
        "price_view",
        "shipment_type",
        "links_purchased_separately",
        "links_title",
        "links_exist",
        "samples_title",
    }
)
_OPTION_INPUTS = frozenset({"select", "multiselect", "boolean", "swatch_visual", "swatch_text"})


@dataclass(slots=True)
class _Attribute:
    code: str
    kind: str  # "option" or "text"
    labels: dict[str, str]  # option value -> admin label


class _RejectError(Exception):
    def __init__(self, fld: str, message: str) -> None:
        super().__init__(message)
        self.field = fld
        self.message = message


class _Mapper:
    """Turns REST items into CatalogProducts (runs in the reading thread only)."""

    def __init__(
        self,
        source: MagentoRestSource,
        views: list[str],
        websites: dict[int, str],
        sets: dict[int, str],
        categories: dict[int, tuple[str, ...]],
    ) -> None:
        self.source = source
        self.views = views
        self.websites = websites
        self.sets = sets
        self.categories = categories
        self.parents: dict[int, tuple[str, ...]] = {}
        self.bundle_parents: dict[str, tuple[str, ...]] = {}  # lower-cased SKU -> bundles
        self.stock: dict[int, Stock] = {}
        self.attributes: dict[str, _Attribute | _FetchFailedError] = {}
        self.attribute_codes: dict[str, str] = {}  # attribute_id -> code
        self.groups: dict[int, str] = {ALL_GROUPS_ID: ALL_CUSTOMER_GROUPS}

    # -- metadata, cached per read -------------------------------------------------------

    def attribute(self, code: str) -> _Attribute:
        cached = self.attributes.get(code)
        if cached is None:
            try:
                data = self.source._get(f"/rest/all/V1/products/attributes/{_quote(code)}")
                cached = _attribute(code, data)
            except _FetchFailedError as exc:
                cached = _Attribute(code, "text", {}) if exc.status == 404 else exc
            self.attributes[code] = cached
        if isinstance(cached, _FetchFailedError):
            raise _RejectError(code, f"the attribute's options cannot be read: {cached}")
        return cached

    def attribute_code(self, attribute_id: str) -> str:
        code = self.attribute_codes.get(attribute_id)
        if code is None:
            try:
                data = self.source._get(
                    "/rest/all/V1/products/attributes",
                    search_criteria([[("attribute_id", "eq", attribute_id)]]),
                )
            except _FetchFailedError as exc:
                raise _RejectError(
                    "configurable_product_options",
                    f"attribute {attribute_id} cannot be read: {exc}",
                ) from None
            items = data.get("items") or []
            if not items:
                raise _RejectError(
                    "configurable_product_options", f"unknown attribute id {attribute_id}"
                )
            code = str(items[0]["attribute_code"])
            self.attribute_codes[attribute_id] = code
            self.attributes.setdefault(code, _attribute(code, items[0]))
        return code

    def group(self, group_id: int) -> str:
        code = self.groups.get(group_id)
        if code is None:
            try:
                data = self.source._get(f"/rest/all/V1/customerGroups/{group_id}")
            except _FetchFailedError as exc:
                raise _RejectError("tier_prices", f"customer group {group_id}: {exc}") from None
            code = self.groups[group_id] = str(data["code"])
        return code

    # -- products --------------------------------------------------------------------------

    def product(self, item: dict[str, Any], page: _Page) -> CatalogProduct | Rejected:
        sku = str(item.get("sku") or "")
        if not sku:
            return Rejected(
                None,
                [SourceIssue(f"product id {item.get('id')!r} has no sku", field="sku")],
            )
        issues: list[SourceIssue] = []
        try:
            product = self._product(sku, item, page, issues)
        except _RejectError as exc:
            issues.append(SourceIssue(exc.message, sku=sku, field=exc.field))
            product = None
        if issues or product is None:
            return Rejected(sku, issues)
        return product

    def _product(
        self, sku: str, item: dict[str, Any], page: _Page, issues: list[SourceIssue]
    ) -> CatalogProduct | None:
        pid = int(item["id"])
        ptype = str(item.get("type_id") or "simple")
        if ptype not in PRODUCT_TYPES:
            raise _RejectError("type_id", f"unknown product type {ptype!r}")
        set_id = item.get("attribute_set_id")
        attribute_set = self.sets.get(int(set_id)) if set_id is not None else "Default"
        if attribute_set is None:
            raise _RejectError("attribute_set_id", f"unknown attribute set id {set_id!r}")
        ext = item.get("extension_attributes") or {}
        values = self._values(sku, item, issues)
        overrides: dict[str, StoreValues] = {}
        for view in self.views:
            view_item = page.views.get(view, {}).get(pid)
            if view_item is None:
                issues.append(
                    SourceIssue(
                        f"not returned for store view {view!r} (deleted during the read?)",
                        sku=sku,
                        field="store_view",
                    )
                )
                continue
            diff = _diff(values, self._values(sku, view_item, issues))
            if diff is not None:
                overrides[view] = diff
        websites = []
        for wid in ext.get("website_ids") or ():
            code = self.websites.get(int(wid))
            if code is None:
                raise _RejectError("website_ids", f"unknown website id {wid!r}")
            websites.append(code)
        categories: dict[tuple[str, ...], None] = {}
        for link in ext.get("category_links") or ():
            cid = int(link["category_id"])
            if cid not in self.categories:
                raise _RejectError(
                    "category_links", f"category id {cid} is not in the category tree"
                )
            path = self.categories[cid]
            if path:
                categories[path] = None
        variants, variant_labels = self._variants(sku, item, page)
        return CatalogProduct(
            sku=sku,
            product_type=ptype,
            attribute_set=attribute_set,
            websites=tuple(websites),
            values=values,
            overrides=overrides,
            categories=tuple(categories),
            stock=self.stock.get(pid),
            gallery=_gallery(item.get("media_gallery_entries") or ()),
            variants=variants,
            variant_labels=variant_labels,
            parent_skus=self.parents.get(pid, ()),
            links=_links(item.get("product_links") or ()),
            grouped=_grouped(item.get("product_links") or ()),
            tier_prices=self._tier_prices(item.get("tier_prices") or ()),
            bundle=_bundle(ext.get("bundle_product_options") or ()),
            bundle_parents=self.bundle_parents.get(sku.lower(), ()),
            product_id=pid or None,
        )

    def _values(self, sku: str, item: dict[str, Any], issues: list[SourceIssue]) -> StoreValues:
        kw: dict[str, Any] = {}
        images: dict[str, str] = {}
        labels: dict[str, str] = {}
        attributes: dict[str, tuple[str, ...]] = {}

        def bad(fld: str, message: str) -> None:
            issues.append(SourceIssue(message, sku=sku, field=fld))

        name = item.get("name")
        if name is not None and name != "":
            kw["name"] = str(name)
        for fld in ("price", "weight"):
            if item.get(fld) is not None:
                try:
                    kw[fld] = _number(item[fld])
                except ValueError as exc:
                    bad(fld, str(exc))
        status = item.get("status")
        if status is not None:
            if str(status) in ("1", "2"):
                kw["enabled"] = str(status) == "1"
            else:
                bad("status", f"status must be 1 (enabled) or 2 (disabled), got {status!r}")
        visibility = item.get("visibility")
        if visibility is not None:
            try:
                kw["visibility"] = VISIBILITIES[int(visibility) - 1]
                if int(visibility) < 1:
                    raise IndexError
            except (ValueError, IndexError, TypeError):
                bad("visibility", f"visibility must be 1..4, got {visibility!r}")
        for ca in item.get("custom_attributes") or ():
            code = str(ca.get("attribute_code") or "")
            value = ca.get("value")
            if not code or code in SKIPPED_ATTRIBUTES or value is None or value == "":
                continue
            try:
                if code in CUSTOM_SCALARS:
                    fname, kind = CUSTOM_SCALARS[code]
                    if kind == _TEXT:
                        kw[fname] = str(value)
                    elif kind == _NUM:
                        kw[fname] = _number(value)
                    elif kind == _DATE:
                        try:
                            kw[fname] = parse_date(str(value))
                        except ValueError:
                            self.source._report.issues.append(
                                SourceIssue(
                                    f"unrecognised date {value!r}: ignored",
                                    sku=sku,
                                    field=code,
                                    severity="warning",
                                )
                            )
                    else:
                        kw[fname] = self._labels(code, value)[0]
                elif code in IMAGE_ROLES:
                    if value != "no_selection":
                        images[IMAGE_ROLES[code]] = str(value).strip()
                elif code in LABEL_ROLES:
                    labels[LABEL_ROLES[code]] = str(value)
                else:
                    attributes[code] = self._labels(code, value)
            except ValueError as exc:
                bad(code, str(exc))
            except _RejectError as exc:
                bad(exc.field, exc.message)
        return StoreValues(images=images, image_labels=labels, attributes=attributes, **kw)

    def _labels(self, code: str, value: Any) -> tuple[str, ...]:
        attr = self.attribute(code)
        if attr.kind == "text":
            if isinstance(value, list):
                return tuple(str(v) for v in value)
            return (str(value),)
        raw = value if isinstance(value, list) else str(value).split(",")
        out = []
        for v in raw:
            v = str(v).strip()
            if not v:
                continue
            label = attr.labels.get(v)
            if label is None:
                raise ValueError(f"option id {v!r} is not an option of attribute {code!r}")
            out.append(label)
        if not out:
            raise ValueError(f"no option in value {value!r}")
        return tuple(out)

    def _variants(
        self, sku: str, item: dict[str, Any], page: _Page
    ) -> tuple[tuple[Variant, ...], dict[str, str]]:
        if item.get("type_id") != "configurable":
            return (), {}
        ext = item.get("extension_attributes") or {}
        options = sorted(
            ext.get("configurable_product_options") or (), key=lambda o: int(o.get("position") or 0)
        )
        codes: list[str] = []
        labels: dict[str, str] = {}
        for opt in options:
            code = self.attribute_code(str(opt["attribute_id"]))
            codes.append(code)
            labels[code] = str(opt.get("label") or code)
        variants = []
        for cid in ext.get("configurable_product_links") or ():
            child = page.children.get(int(cid))
            if child is None:
                raise _RejectError(
                    "configurable_product_links", f"child product id {cid} does not exist"
                )
            values = {
                str(ca.get("attribute_code")): ca.get("value")
                for ca in child.get("custom_attributes") or ()
            }
            pairs = []
            for code in codes:
                value = values.get(code)
                if value is None or value == "":
                    continue
                try:
                    pairs.append((code, self._labels(code, value)[0]))
                except ValueError as exc:
                    raise _RejectError(
                        "configurable_product_links", f"child {child.get('sku')!r}: {exc}"
                    ) from None
            variants.append(Variant(str(child.get("sku")), tuple(pairs)))
        return tuple(variants), labels

    def _tier_prices(self, tiers: Sequence[dict[str, Any]]) -> tuple[TierPrice, ...]:
        out = []
        for t in tiers:
            try:
                website_id = int((t.get("extension_attributes") or {}).get("website_id") or 0)
                website = self.websites.get(website_id) if website_id else None
                out.append(
                    TierPrice(
                        self.group(int(t["customer_group_id"])),
                        _number(t["qty"]),
                        _number(t["value"]),
                        website,
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise _RejectError("tier_prices", f"cannot read a tier price: {exc}") from None
        return tuple(out)


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(str(value)[:19], TS_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a number: {value!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"not a finite number: {value!r}")
    return f


def _attribute(code: str, data: dict[str, Any]) -> _Attribute:
    kind = "option" if data.get("frontend_input") in _OPTION_INPUTS else "text"
    labels = {
        str(o.get("value")): str(o.get("label"))
        for o in data.get("options") or ()
        if str(o.get("value", "")) != ""
    }
    if data.get("frontend_input") == "boolean" and not labels:
        labels = {"1": "Yes", "0": "No"}
    return _Attribute(code, kind, labels)


def _walk(node: dict[str, Any], path: tuple[str, ...], out: dict[int, tuple[str, ...]]) -> None:
    """Category ids -> name paths; levels 0 (Root Catalog) and 1 (store roots) left out."""
    level = int(node.get("level") or 0)
    here = (*path, str(node.get("name"))) if level >= 2 else ()
    out[int(node["id"])] = here
    for child in node.get("children_data") or ():
        _walk(child, here, out)


def _stock(s: dict[str, Any]) -> Stock:
    manage = None if s.get("use_config_manage_stock", True) else bool(s.get("manage_stock"))
    notify = None
    if not s.get("use_config_notify_stock_qty", True) and s.get("notify_stock_qty") is not None:
        notify = _number(s["notify_stock_qty"])
    return Stock(
        qty=_number(s.get("qty") or 0),
        is_in_stock=bool(s.get("is_in_stock")),
        manage_stock=manage,
        notify_qty=notify,
    )


def _gallery(entries: Sequence[dict[str, Any]]) -> tuple[GalleryImage, ...]:
    return tuple(
        GalleryImage(
            str(e["file"]),
            e.get("label") or None,
            int(e.get("position") or 0),
            bool(e.get("disabled")),
        )
        for e in entries
        if e.get("file") and e.get("media_type", "image") == "image"
    )


def _links(links: Sequence[dict[str, Any]]) -> Links:
    by_type: dict[str, list[tuple[int, str]]] = {}
    for link in links:
        by_type.setdefault(str(link.get("link_type")), []).append(
            (int(link.get("position") or 0), str(link.get("linked_product_sku")))
        )

    def skus(kind: str) -> tuple[str, ...]:
        return tuple(s for _, s in sorted(by_type.get(kind, []), key=lambda p: p[0]))

    return Links(related=skus("related"), crosssell=skus("crosssell"), upsell=skus("upsell"))


def _bundle(options: Sequence[dict[str, Any]]) -> tuple[BundleOption, ...]:
    """`extension_attributes.bundle_product_options` [{title, required, type,
    position, product_links [{sku, qty, can_change_quantity, is_default, position}]}]."""
    out = []
    for opt in sorted(options, key=lambda o: int(o.get("position") or 0)):
        links = sorted(opt.get("product_links") or (), key=lambda lk: int(lk.get("position") or 0))
        out.append(
            BundleOption(
                title=str(opt.get("title") or ""),
                required=bool(opt.get("required")),
                multi=str(opt.get("type") or "").lower() in ("checkbox", "multi"),
                selections=tuple(
                    BundleSelection(
                        sku=str(lk.get("sku")),
                        qty=_bundle_qty(lk.get("qty")),
                        user_defined_qty=bool(lk.get("can_change_quantity")),
                        default=bool(lk.get("is_default")),
                    )
                    for lk in links
                ),
            )
        )
    return tuple(out)


def _bundle_qty(value: Any) -> float | None:
    try:
        return None if value is None else _number(value)
    except ValueError as exc:
        raise _RejectError("bundle_product_options", f"selection qty: {exc}") from None


def _grouped(links: Sequence[dict[str, Any]]) -> tuple[GroupedLink, ...]:
    out = []
    for link in sorted(
        (lk for lk in links if lk.get("link_type") == "associated"),
        key=lambda lk: int(lk.get("position") or 0),
    ):
        qty = (link.get("extension_attributes") or {}).get("qty")
        out.append(
            GroupedLink(
                str(link.get("linked_product_sku")), _number(qty) if qty is not None else None
            )
        )
    return tuple(out)


def _diff(base: StoreValues, view: StoreValues) -> StoreValues | None:
    """The view's values that differ from global, as sparse overrides (None: no difference)."""
    kw: dict[str, Any] = {}
    cleared = set()
    for name in SCALAR_VALUES:
        g, v = getattr(base, name), getattr(view, name)
        if v == g:
            continue
        if v is None:
            cleared.add(name)
        else:
            kw[name] = v
    images = _dict_diff(base.images, view.images, "")
    labels = _dict_diff(base.image_labels, view.image_labels, "")
    attributes = _dict_diff(base.attributes, view.attributes, ())
    if not (kw or cleared or images or labels or attributes):
        return None
    return StoreValues(
        images=images,
        image_labels=labels,
        attributes=attributes,
        cleared=frozenset(cleared),
        **kw,
    )


def _dict_diff(base: dict[str, Any], view: dict[str, Any], empty: Any) -> dict[str, Any]:
    out = {k: v for k, v in view.items() if base.get(k) != v}
    out.update({k: empty for k in base if k not in view})
    return out
