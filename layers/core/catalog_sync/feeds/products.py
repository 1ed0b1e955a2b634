"""The `products` feed: one item per product and store view.

Identity `sku` + `storeViewCode`, grouped by `sku`. Every list whose order means
nothing is sorted, and numbers are floats, so the canonical hash of an item does
not change when the source reorders rows, list entries or writes `52.0000` for `52`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from catalog_sync.catalog import CatalogProduct, Stock, StoreValues
from catalog_sync.feeds.attributes import derive_label
from catalog_sync.feeds.spec import BuildContext, FeedItem, FeedSpec, WireModel
from catalog_sync.sync.canonical import json_datetime


class _Part(WireModel):
    """A part of a product item (an image, a link, ...)."""


class ProductImage(_Part):
    url: str  # path under pub/media/catalog/product, as Magento exports it
    label: str | None = None
    roles: list[str] = []  # sorted: base, small, swatch, thumbnail
    position: int = 0
    hidden: bool = False


class ProductAttribute(_Part):
    code: str
    values: list[str]  # sorted labels


class ProductPrice(_Part):
    regular: float | None = None
    special: float | None = None  # only while the special price is active
    special_from: datetime | None = None
    special_to: datetime | None = None
    final: float | None = None


class ProductAvailability(_Part):
    in_stock: bool
    qty: float = 0.0
    manage_stock: bool | None = None


class VariantOption(_Part):
    code: str
    label: str


class ProductVariant(_Part):
    sku: str
    options: list[VariantOption]  # sorted by code


class ConfigurableAttribute(_Part):
    code: str
    label: str | None = None


class ProductLinks(_Part):
    related: list[str] = []
    crosssell: list[str] = []
    upsell: list[str] = []


class GroupedProduct(_Part):
    sku: str
    qty: float | None = None


class ProductItem(FeedItem):
    sku: str
    store_view_code: str
    website_code: str
    attribute_set_code: str = "Default"
    type: str = "simple"
    name: str | None = None
    description: str | None = None
    short_description: str | None = None
    url_key: str | None = None
    enabled: bool = True
    visibility: str | None = None
    tax_class: str | None = None
    weight: float | None = None
    meta_title: str | None = None
    meta_keywords: str | None = None
    meta_description: str | None = None
    categories: list[str] = []
    images: list[ProductImage] = []
    attributes: list[ProductAttribute] = []
    price: ProductPrice | None = ProductPrice()  # None when the prices feed carries prices
    availability: ProductAvailability | None = None
    parent_skus: list[str] = []
    variants: list[ProductVariant] = []
    configurable_attributes: list[ConfigurableAttribute] = []
    links: ProductLinks = ProductLinks()
    grouped_products: list[GroupedProduct] = []


@lru_cache(maxsize=16384)
def category_path(path: tuple[str, ...]) -> str:
    """`("Men", "Tops")` -> `"Men/Tops"`; a `/` inside a name stays escaped as `\\/`."""
    return "/".join(name.replace("/", "\\/") for name in path)


def special_active(values: StoreValues, now: datetime) -> bool:
    """Whether the special price applies at `now`. A `to` date without a time
    (midnight) covers that whole day, as in Magento."""
    if values.special_price is None:
        return False
    start, end = values.special_from, values.special_to
    if start is not None and now < start:
        return False
    if end is not None:
        if (end.hour, end.minute, end.second, end.microsecond) == (0, 0, 0, 0):
            end = end + timedelta(days=1)
            return now < end
        return now <= end
    return True


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _price(values: StoreValues, now: datetime) -> dict[str, Any]:
    regular = _float(values.price)
    special = _float(values.special_price) if special_active(values, now) else None
    final = regular
    if special is not None:
        final = special if regular is None else min(regular, special)
    start, end = values.special_from, values.special_to
    return {
        "regular": regular,
        "special": special,
        "specialFrom": None if start is None else json_datetime(start),
        "specialTo": None if end is None else json_datetime(end),
        "final": final,
    }


def _images(product: CatalogProduct, values: StoreValues) -> list[dict[str, Any]]:
    roles_by_path: dict[str, list[str]] = {}
    label_by_path: dict[str, str] = {}
    for role, path in values.images.items():
        roles_by_path.setdefault(path, []).append(role)
        label = values.image_labels.get(role)
        if label and path not in label_by_path:
            label_by_path[path] = label
    if not product.gallery and not roles_by_path:
        return []
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for img in product.gallery:
        if img.path in seen:
            continue
        seen.add(img.path)
        roles = roles_by_path.get(img.path)
        out.append(
            {
                "url": img.path,
                "label": img.label or label_by_path.get(img.path),
                "roles": sorted(roles) if roles else [],
                "position": img.position,
                "hidden": img.hidden,
            }
        )
    for path, roles in roles_by_path.items():
        if path not in seen:  # a role image missing from the gallery comes first
            out.append(
                {
                    "url": path,
                    "label": label_by_path.get(path),
                    "roles": sorted(roles),
                    "position": 0,
                    "hidden": False,
                }
            )
    out.sort(key=_image_order)
    return out


def _image_order(image: dict[str, Any]) -> tuple[int, str]:
    return image["position"], image["url"]


def _attributes(values: StoreValues) -> list[dict[str, Any]]:
    return [
        {"code": code, "values": sorted(vals)}
        for code, vals in sorted(values.attributes.items())
        if vals
    ]


def _availability(stock: Stock | None) -> dict[str, Any] | None:
    if stock is None:
        return None
    return {
        "inStock": stock.is_in_stock,
        "qty": float(stock.qty),
        "manageStock": stock.manage_stock,
    }


def _shared(product: CatalogProduct) -> dict[str, Any]:
    """The store-view independent fields of a product's items, built once."""
    stock = product.stock
    variants: dict[str, dict[str, Any]] = {}
    codes: set[str] = set(product.variant_labels)
    for v in product.variants:
        options = sorted(v.options)
        codes.update(code for code, _label in options)
        variants[v.sku] = {
            "sku": v.sku,
            "options": [{"code": c, "label": lbl} for c, lbl in options],
        }
    links = product.links
    grouped = {g.sku: g.qty for g in product.grouped}
    labels = product.variant_labels
    return {
        "attributeSetCode": product.attribute_set,
        "type": product.product_type,
        "categories": sorted({category_path(p) for p in product.categories if p})
        if product.categories
        else [],
        "availability": _availability(stock),
        "parentSkus": sorted(set(product.parent_skus)) if product.parent_skus else [],
        "variants": [variants[s] for s in sorted(variants)] if variants else [],
        # The CSV may lack configurable_variation_labels: derive the label from the code
        # as the attributes feed does (REST gives the attribute's label).
        "configurableAttributes": [
            {"code": c, "label": labels.get(c) or derive_label(c)} for c in sorted(codes)
        ]
        if codes
        else [],
        "links": {
            "related": sorted(set(links.related)) if links.related else [],
            "crosssell": sorted(set(links.crosssell)) if links.crosssell else [],
            "upsell": sorted(set(links.upsell)) if links.upsell else [],
        },
        "groupedProducts": [{"sku": s, "qty": _float(grouped[s])} for s in sorted(grouped)]
        if grouped
        else [],
    }


def _parts(
    product: CatalogProduct, v: StoreValues, now: datetime, prices_apart: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any] | None]:
    """The images, attributes and price of an item, from the view's values."""
    return (
        _images(product, v) if product.gallery or v.images else [],
        _attributes(v) if v.attributes else [],
        None if prices_apart else _price(v, now),
    )


_PRICE_VALUES = frozenset({"price", "special_price", "special_from", "special_to"})


def _touches_price(override: StoreValues) -> bool:
    return (
        override.price is not None
        or override.special_price is not None
        or override.special_from is not None
        or override.special_to is not None
        or not _PRICE_VALUES.isdisjoint(override.cleared)
    )


def build_product_items(product: CatalogProduct, ctx: BuildContext) -> list[dict[str, Any]]:
    """One item (a JSON-ready dict shaped as `ProductItem`) per configured store
    view whose website has the product. When the run also builds the `prices` feed,
    the item carries no price (`price` null): a price edit then sends prices, not
    the whole product."""
    now = ctx.now
    items: list[dict[str, Any]] = []
    shared: dict[str, Any] | None = None
    prices_apart = "prices" in ctx.feeds
    global_parts: tuple[Any, ...] | None = None  # shared by the views without overrides
    sku = product.sku
    overrides = product.overrides
    for view, website in ctx.store_views:
        if not product.in_website(website):
            continue
        if shared is None:
            shared = _shared(product)
        override = overrides.get(view) if overrides else None
        g = product.values
        if global_parts is None:
            global_parts = _parts(product, g, now, prices_apart)
        images, attributes, price = global_parts
        if override is None:
            v = g
        else:
            # A store view's values: the parts its overrides leave alone are the
            # global ones (the overlay drops empty entries, which these skip too).
            v = g.overlay(override)
            if override.images or override.image_labels or "" in g.images.values():
                images = _images(product, v) if product.gallery or v.images else []
            if override.attributes:
                attributes = _attributes(v) if v.attributes else []
            if not prices_apart and _touches_price(override):
                price = _price(v, now)
        items.append(
            {
                "deleted": False,
                "modifiedAt": now,
                "sku": sku,
                "storeViewCode": view,
                "websiteCode": website,
                "attributeSetCode": shared["attributeSetCode"],
                "type": shared["type"],
                "name": v.name,
                "description": v.description,
                "shortDescription": v.short_description,
                "urlKey": v.url_key,
                "enabled": v.enabled is not False,
                "visibility": v.visibility,
                "taxClass": v.tax_class,
                "weight": _float(v.weight),
                "metaTitle": v.meta_title,
                "metaKeywords": v.meta_keywords,
                "metaDescription": v.meta_description,
                "categories": shared["categories"],
                "images": images,
                "attributes": attributes,
                "price": price,
                # a multi-source shop: the stock of the view's website (catalog.StockLevel)
                "availability": _availability(product.stock_for(website))
                if product.stocks
                else shared["availability"],
                "parentSkus": shared["parentSkus"],
                "variants": shared["variants"],
                "configurableAttributes": shared["configurableAttributes"],
                "links": shared["links"],
                "groupedProducts": shared["groupedProducts"],
            }
        )
    return items


PRODUCTS = FeedSpec(
    name="products",
    identity=("sku", "storeViewCode"),
    group_field="sku",
    model=ProductItem,
    build=build_product_items,
)
