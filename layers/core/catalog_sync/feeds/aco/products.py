"""`acoProducts`: one ACO product per product and locale (store view).

Identity `sku` + `source.locale`, grouped by `sku`: a product removed from one store
view (its website) is deleted in that locale only. The mapping (docs/aco.md) follows
Adobe's connector: url key -> `slug`, status upper-cased (a configurable without
children DISABLED), visibility -> `visibleIn`, meta fields -> `metaTags` (keywords
split on newlines), stock and weight -> the first attribute `aco_ac_attributes`,
image roles -> BASE/SMALL/THUMBNAIL/SWATCH, category paths -> `routes` to the
category slugs, links upper-cased, parents -> `VARIANT_OF`, configurable options ->
`configurations`. A product without a name or url key, or with a category that has
no slug, is rejected (BuildError naming the field) and keeps its state.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import Field

from catalog_sync.catalog import CatalogProduct, StoreValues
from catalog_sync.feeds.aco import METADATA, PRODUCTS
from catalog_sync.feeds.aco.common import (
    Source,
    Wire,
    category_paths,
    category_slug,
    options,
    views_of,
)
from catalog_sync.feeds.aco.metadata import STOCK_ATTRIBUTE, value_type
from catalog_sync.feeds.attributes import derive_label
from catalog_sync.feeds.inventory import COMPOSITE_TYPES, DEFAULT_NOTIFY_QTY
from catalog_sync.feeds.spec import BuildContext, BuildError, FeedSpec

ROLES = {"base": "BASE", "small": "SMALL", "thumbnail": "THUMBNAIL", "swatch": "SWATCH"}
VISIBLE_IN = {
    "Not Visible Individually": [],
    "Catalog": ["CATALOG"],
    "Search": ["SEARCH"],
    "Catalog, Search": ["CATALOG", "SEARCH"],
}
MAX_OPTION_VALUE = 255


class MetaTags(Wire):
    title: str | None = None
    keywords: list[str] | None = None
    description: str | None = None


class ProductAttribute(Wire):
    code: str
    values: list[str]
    variant_reference_id: str | None = None


class ProductImage(Wire):
    url: str
    label: str | None = None
    roles: list[Literal["BASE", "SMALL", "THUMBNAIL", "SWATCH"]] = []
    custom_roles: list[str] = []


class ProductLink(Wire):
    type: str
    sku: str


class ProductRoute(Wire):
    path: str
    position: int | None = None


class OptionValue(Wire):
    variant_reference_id: str
    label: str | None = None


class ProductConfiguration(Wire):
    attribute_code: str
    label: str | None = None
    type: Literal["CONFIGURABLE", "SWATCH"]
    values: list[OptionValue]


class BundleItem(Wire):
    sku: str
    qty: float | None = None
    user_defined_qty: bool | None = None


class ProductBundle(Wire):
    group: str
    required: bool
    multi_select: bool
    items: list[BundleItem]
    default_item_skus: list[str] = []


class ExternalId(Wire):
    id: str
    origin: str


class ProductItem(Wire):
    sku: str = Field(min_length=1)
    source: Source
    name: str
    slug: str = Field(min_length=1)
    description: str | None = None
    short_description: str | None = None
    status: Literal["ENABLED", "DISABLED"]
    visible_in: list[Literal["CATALOG", "SEARCH"]] = []
    meta_tags: MetaTags | None = None
    attributes: list[ProductAttribute] = []
    images: list[ProductImage] = []
    links: list[ProductLink] = []
    routes: list[ProductRoute] = []
    configurations: list[ProductConfiguration] = []
    bundles: list[ProductBundle] = []
    external_ids: list[ExternalId] = []


def variant_reference_id(code: str, label: str) -> str:
    """What ties a configurable's option value to its variant's attribute: the
    attribute code and the value's admin label (the same from both records)."""
    return f"{code}:{label}"


def _stock_value(product: CatalogProduct) -> str | None:
    """`aco_ac_attributes`: stock and weight as one JSON string, as Adobe's connector
    sends them (`inStock`, `lowStock` as the inventory feed computes them; `weight`
    and `weightType` "fixed", or nulls for a product without weight)."""
    stock, weight = product.stock, product.values.weight
    if stock is None and weight is None:
        return None
    in_stock = low = None
    if stock is not None:
        managed = stock.manage_stock is not False
        in_stock = stock.is_in_stock or not managed
        notify = DEFAULT_NOTIFY_QTY if stock.notify_qty is None else float(stock.notify_qty)
        low = managed and float(stock.qty) < notify and product.product_type not in COMPOSITE_TYPES
    doc = {
        "inStock": in_stock,
        "lowStock": low,
        "weight": None if weight is None else float(weight),
        "weightType": None if weight is None else "fixed",
    }
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def _attributes(product: CatalogProduct, v: StoreValues, stock: str | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if stock is not None:
        out.append({"code": STOCK_ATTRIBUTE, "values": [stock]})
    variant = bool(product.parent_skus)
    option_codes = {c for x in product.variants for c, _ in x.options}
    for code, vals in sorted(v.attributes.items()):
        if not vals:
            continue
        kind = value_type(vals, code in option_codes)
        values = (
            sorted("true" if x.lower() == "yes" else "false" for x in vals)
            if kind == "BOOLEAN"
            else sorted(vals)
        )
        attr: dict[str, Any] = {"code": code, "values": values}
        # A variant's single values can be option values of its configurables.
        if variant and len(vals) == 1 and _is_option(vals[0]):
            attr["variantReferenceId"] = variant_reference_id(code, vals[0])
        out.append(attr)
    return out


def _is_option(value: str) -> bool:
    return len(value) <= MAX_OPTION_VALUE and "\n" not in value


def _images(product: CatalogProduct, v: StoreValues, base: str | None) -> list[dict[str, Any]]:
    roles: dict[str, set[str]] = {}
    labels: dict[str, str] = {}
    for role, path in v.images.items():
        if path:
            roles.setdefault(path, set()).add(role)
            label = v.image_labels.get(role)
            if label:
                labels.setdefault(path, label)
    order: dict[str, tuple[int, str]] = {p: (0, p) for p in roles}
    for img in product.gallery:
        if img.hidden and img.path not in roles:
            continue  # hidden from the product page and in no role: not shown anywhere
        order[img.path] = (img.position, img.path)
        if img.label:
            labels[img.path] = img.label
    out = []
    for path in sorted(order, key=order.__getitem__):
        own = roles.get(path, set())
        image: dict[str, Any] = {
            "url": f"{base.rstrip('/')}/{path.lstrip('/')}" if base else path,
            "roles": sorted(ROLES[r] for r in own if r in ROLES),
            "customRoles": sorted(r for r in own if r not in ROLES),
        }
        if path in labels:
            image["label"] = labels[path]
        out.append(image)
    return out


def _meta(v: StoreValues) -> dict[str, Any] | None:
    meta: dict[str, Any] = {}
    if v.meta_title:
        meta["title"] = v.meta_title
    if v.meta_keywords:
        words = [w.strip() for w in v.meta_keywords.splitlines() if w.strip()]
        if words:
            meta["keywords"] = words
    if v.meta_description:
        meta["description"] = v.meta_description
    return meta or None


def _shared(product: CatalogProduct) -> dict[str, Any]:
    """The locale-independent parts, built once per product."""
    links = [
        {"type": kind, "sku": sku}
        for kind, skus in (
            ("RELATED", product.links.related),
            ("CROSSSELL", product.links.crosssell),
            ("UPSELL", product.links.upsell),
            ("VARIANT_OF", product.parent_skus),
            ("GROUPED", tuple(g.sku for g in product.grouped)),
            ("IN_BUNDLE", product.bundle_parents),
        )
        for sku in sorted(set(skus))
    ]
    routes = [{"path": category_slug(path)} for path in category_paths(product)]
    values = product.variant_values()
    configurations = [
        {
            "attributeCode": code,
            "label": product.variant_labels.get(code) or derive_label(code),
            "type": "CONFIGURABLE",
            "values": [
                {"variantReferenceId": variant_reference_id(code, lbl), "label": lbl}
                for lbl in sorted(values[code])
            ],
        }
        for code in sorted(values)
    ]
    return {
        "links": links,
        "routes": sorted(routes, key=lambda r: r["path"]),
        "configurations": configurations,
        "bundles": _bundles(product),
        "stock": _stock_value(product),
    }


def _bundles(product: CatalogProduct) -> list[dict[str, Any]]:
    """A bundle's options as ACO `bundles`: a group per option, its selections as
    items (a SKU once per bundle: ACO refuses a repeat, the first one is kept)."""
    seen: set[str] = set()
    out = []
    for option in product.bundle:
        items = []
        for sel in option.selections:
            if sel.sku in seen:
                continue
            seen.add(sel.sku)
            item: dict[str, Any] = {"sku": sel.sku, "userDefinedQty": sel.user_defined_qty}
            if sel.qty is not None:
                item["qty"] = float(sel.qty)
            items.append(item)
        if items:
            offered = {i["sku"] for i in items}
            defaults = [s.sku for s in option.selections if s.default and s.sku in offered]
            out.append(
                {
                    "group": option.title,
                    "required": option.required,
                    "multiSelect": option.multi,
                    "items": items,
                    "defaultItemSkus": list(dict.fromkeys(defaults)),
                }
            )
    return out


def build_product_items(product: CatalogProduct, ctx: BuildContext) -> list[dict[str, Any]]:
    """One item per locale of the product's websites (JSON-ready, as `ProductItem`)."""
    shared: dict[str, Any] | None = None
    media = options(ctx).media_base_url
    items = []
    for view, _website, locale in views_of(product, ctx):
        if shared is None:
            shared = _shared(product)  # raises BuildError for a category without a slug
        v = product.values_for(view)
        if not v.name:
            raise BuildError("name", f"store view {view!r}: no name (ACO requires one)")
        if not v.url_key:
            raise BuildError("url_key", f"store view {view!r}: no url key to make a slug from")
        status = "ENABLED" if v.enabled is not False else "DISABLED"
        if product.product_type == "configurable" and not product.variants:
            status = "DISABLED"  # a configurable without children cannot be bought
        item: dict[str, Any] = {
            "sku": product.sku,
            "source": {"locale": locale},
            "name": v.name,
            "slug": v.url_key,
            "description": v.description,
            "shortDescription": v.short_description,
            "status": status,
            "visibleIn": list(VISIBLE_IN.get(v.visibility or "Catalog, Search", [])),
            "attributes": _attributes(product, v, shared["stock"]),
            "images": _images(product, v, media),
            "links": [dict(x) for x in shared["links"]],
            "routes": [dict(x) for x in shared["routes"]],
            "configurations": shared["configurations"],
        }
        if shared["bundles"]:
            item["bundles"] = shared["bundles"]
        if product.product_id is not None:  # Adobe's connector: productId, "AdobeCommerce"
            item["externalIds"] = [{"id": str(product.product_id), "origin": "AdobeCommerce"}]
        meta = _meta(v)
        if meta is not None:
            item["metaTags"] = meta
        items.append(item)
    return items


ACO_PRODUCTS = FeedSpec(
    name=PRODUCTS,
    identity=("sku", "source.locale"),
    group_field="sku",
    model=ProductItem,
    build=build_product_items,
    keys_only_tombstone=True,
    after=(METADATA,),
)
