"""REST JSON to `CatalogProduct`: option ids to labels, categories, stock, store-view overrides."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from catalog_sync.sources.magento_rest.source import MagentoRestSource

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from catalog_sync.catalog import (
    ALL_CUSTOMER_GROUPS,
    PRODUCT_TYPES,
    VISIBILITIES,
    BundleOption,
    BundleSelection,
    CatalogProduct,
    Stock,
    StockLevel,
    StoreValues,
    TierPrice,
    Variant,
)
from catalog_sync.records import Rejected, SourceIssue
from catalog_sync.sources.inventory import SourceItem, StockDef, stock_levels
from catalog_sync.sources.magento_rest.client import (
    RefusedError,
    _FetchFailedError,
    _Page,
    _quote,
    search_criteria,
)
from catalog_sync.sources.magento_rest.parts import (
    _diff,
    _dynamic_bundle,
    _gallery,
    _grouped,
    _links,
    _number,
)
from catalog_sync.sources.values import attribute_value, parse_date

ALL_GROUPS_ID = 32000
# The customer groups of every Magento install, used when the integration may not read
# /V1/customerGroups (Magento_Customer::group).
DEFAULT_GROUPS = {0: "NOT LOGGED IN", 1: "General", 2: "Wholesale", 3: "Retailer"}
# Types whose price Magento derives (children, selections): REST gives `price: 0`.
DERIVED_PRICE = frozenset({"configurable"})
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
        self.groups_refused = False
        self.stock_defs: tuple[StockDef, ...] = ()  # MSI stocks (multi-source shops only)
        self.source_items: dict[str, list[SourceItem]] = {}  # lowercase sku -> items
        self._warned: set[tuple[str, ...]] = set()

    def warn(self, key: tuple[str, ...], issue: SourceIssue) -> None:
        """A warning in the read's report, once per `key` and read."""
        if key not in self._warned:
            self._warned.add(key)
            self.source._report.issues.append(issue)

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
        if code is None and not self.groups_refused:
            try:
                data = self.source._get(f"/rest/all/V1/customerGroups/{group_id}")
            except _FetchFailedError as exc:
                raise _RejectError("tier_prices", f"customer group {group_id}: {exc}") from None
            except RefusedError as exc:
                self.groups_refused = True
                self.warn(
                    ("customerGroups",),
                    SourceIssue(
                        f"customer groups cannot be read ({exc.resource or 'a permission'} "
                        f"missing, HTTP {exc.status} on GET {exc.path}): tier prices use the "
                        "default group codes (0 NOT LOGGED IN, 1 General, 2 Wholesale, "
                        "3 Retailer); products with tier prices of other groups are rejected",
                        field="tier_prices",
                        severity="warning",
                    ),
                )
            else:
                code = self.groups[group_id] = str(data["code"])
        if code is None:
            code = DEFAULT_GROUPS.get(group_id)
            if code is None:
                raise _RejectError(
                    "tier_prices",
                    f"customer group {group_id} cannot be read (Magento_Customer::group missing)",
                )
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
        derived = ptype in DERIVED_PRICE or (ptype == "bundle" and _dynamic_bundle(item))
        values = self._values(sku, item, issues, derived)
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
            diff = _diff(values, self._values(sku, view_item, issues, derived))
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
        stock = page.stock.get(pid, self.stock.get(pid))
        levels: tuple[StockLevel, ...] = ()
        if self.stock_defs:
            levels = stock_levels(self.source_items.get(sku.lower(), ()), self.stock_defs, stock)
        return CatalogProduct(
            sku=sku,
            product_type=ptype,
            attribute_set=attribute_set,
            websites=tuple(websites),
            values=values,
            overrides=overrides,
            categories=tuple(categories),
            stock=stock,
            stocks=levels,
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

    def _values(
        self, sku: str, item: dict[str, Any], issues: list[SourceIssue], derived: bool
    ) -> StoreValues:
        """The item's store-scoped values; `derived`: a type whose price Magento derives
        (a configurable, a dynamic bundle), whose `price: 0` is no price."""
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
        if derived and kw.get("price") == 0:
            del kw["price"]
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
                        kw[fname] = self._labels(sku, code, value)[0]
                elif code in IMAGE_ROLES:
                    if value != "no_selection":
                        images[IMAGE_ROLES[code]] = str(value).strip()
                elif code in LABEL_ROLES:
                    labels[LABEL_ROLES[code]] = str(value)
                else:
                    attributes[code] = self._labels(sku, code, value)
            except ValueError as exc:
                bad(code, str(exc))
            except _RejectError as exc:
                bad(exc.field, exc.message)
        return StoreValues(images=images, image_labels=labels, attributes=attributes, **kw)

    def _labels(self, sku: str, code: str, value: Any) -> tuple[str, ...]:
        """A value as the export CSV gives it: option ids as admin labels (an id not in
        the option list kept as it is, with one warning), text normalised."""
        attr = self.attribute(code)
        if attr.kind == "text":
            if isinstance(value, list):
                return tuple(attribute_value(str(v)) for v in value)
            return tuple(attribute_value(v) for v in str(value).split("|") if v)
        raw = value if isinstance(value, list) else str(value).split(",")
        out = []
        for v in raw:
            v = str(v).strip()
            if not v:
                continue
            label = attr.labels.get(v)
            if label is None:
                self.warn(
                    ("option", sku, code, v),
                    SourceIssue(
                        f"option id {v!r} is not in the option list of attribute {code!r} "
                        "(a deleted option?): kept as its raw value",
                        sku=sku,
                        field=code,
                        severity="warning",
                    ),
                )
                label = v
            out.append(attribute_value(label))
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
                    pairs.append((code, self._labels(str(child.get("sku")), code, value)[0]))
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
