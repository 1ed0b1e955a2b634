"""Source-neutral catalog records: what a catalog source (the Magento export CSV,
later the Magento REST API) yields for each product, and what the feed builders read.

A `CatalogProduct` holds the product's global values (`values`) and, per store
view, the store-scoped values that differ (`overrides`, sparse: `None` means
"inherit"). `values_for(view)` gives the values as that store view sees them.
Everything else (websites, categories, stock, gallery, variants, links) is global,
as in Magento. Values are already typed: numbers are floats, dates aware
datetimes, select/multiselect values admin labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

_V = TypeVar("_V", str, tuple[str, ...])

PRODUCT_TYPES = frozenset(
    {"simple", "virtual", "configurable", "bundle", "grouped", "downloadable", "giftcard"}
)
VISIBILITIES = ("Not Visible Individually", "Catalog", "Search", "Catalog, Search")
IMAGE_ROLES = ("base", "small", "thumbnail", "swatch")

# StoreValues fields that are plain scalars (overlay: a non-None override wins).
SCALAR_VALUES = (
    "name",
    "description",
    "short_description",
    "url_key",
    "enabled",
    "visibility",
    "tax_class",
    "weight",
    "price",
    "special_price",
    "special_from",
    "special_to",
    "meta_title",
    "meta_keywords",
    "meta_description",
)


@dataclass(slots=True)
class StoreValues:
    """The store-scoped values of a product.

    As global values: `None` = no value. As a store view's overrides: `None` =
    inherit the global value; a field named in `cleared` was explicitly emptied
    (`__EMPTY__VALUE__`) in that store view. In `attributes`, `images` and
    `image_labels` an override replaces the entry of the same key; an empty tuple
    in `attributes` (or an empty string in the image dicts) clears it.
    """

    name: str | None = None
    description: str | None = None
    short_description: str | None = None
    url_key: str | None = None
    enabled: bool | None = None
    visibility: str | None = None  # a label of VISIBILITIES
    tax_class: str | None = None
    weight: float | None = None
    price: float | None = None
    special_price: float | None = None
    special_from: datetime | None = None
    special_to: datetime | None = None
    meta_title: str | None = None
    meta_keywords: str | None = None
    meta_description: str | None = None
    images: dict[str, str] = field(default_factory=dict)  # role (IMAGE_ROLES) -> path
    image_labels: dict[str, str] = field(default_factory=dict)  # role -> label
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # code -> values
    cleared: frozenset[str] = frozenset()  # SCALAR_VALUES fields emptied explicitly

    def overlay(self, override: StoreValues) -> StoreValues:
        """These values with `override`'s non-empty values (and clears) on top."""
        out = StoreValues(
            images=_merge(self.images, override.images),
            image_labels=_merge(self.image_labels, override.image_labels),
            attributes=_merge(self.attributes, override.attributes),
        )
        cleared = override.cleared
        for name in SCALAR_VALUES:
            value = getattr(override, name)
            if value is None:
                value = None if name in cleared else getattr(self, name)
            setattr(out, name, value)
        return out


def _merge(base: dict[str, _V], over: dict[str, _V]) -> dict[str, _V]:
    if not over:
        return {k: v for k, v in base.items() if v}
    merged = dict(base)
    merged.update(over)
    return {k: v for k, v in merged.items() if v}


@dataclass(frozen=True, slots=True)
class Stock:
    qty: float = 0.0
    is_in_stock: bool = False
    manage_stock: bool | None = None  # None: the store configuration decides
    notify_qty: float | None = None  # notify_on_stock_below; None: the store configuration


@dataclass(frozen=True, slots=True)
class StockLevel:
    """A product's stock on one MSI stock (multi-source shops): the sum of its
    in-stock source items on the stock's sources, for the stock's websites."""

    stock_id: str
    websites: tuple[str, ...]  # the stock's sales channels (website codes; "*": every one)
    stock: Stock


ALL_CUSTOMER_GROUPS = "ALL GROUPS"  # TierPrice.customer_group for every group (REST: 32000)


@dataclass(frozen=True, slots=True)
class TierPrice:
    """A tier (quantity) price, Magento's Advanced Pricing: a fixed unit price from `qty` on."""

    customer_group: str  # customer group code, or ALL_CUSTOMER_GROUPS
    qty: float
    value: float
    website: str | None = None  # website code; None: all websites


@dataclass(frozen=True, slots=True)
class GalleryImage:
    """One media gallery image (`additional_images`), position from 1 in file order."""

    path: str
    label: str | None = None
    position: int = 0
    hidden: bool = False


@dataclass(frozen=True, slots=True)
class Variant:
    """A configurable product's child: its SKU and option values {attribute code: label}."""

    sku: str
    options: tuple[tuple[str, str], ...] = ()  # (code, label), in source order


@dataclass(frozen=True, slots=True)
class GroupedLink:
    sku: str
    qty: float | None = None


@dataclass(frozen=True, slots=True)
class BundleSelection:
    """A product a bundle option offers: its SKU, the default quantity, whether the
    shopper may change it, whether it is preselected."""

    sku: str
    qty: float | None = None
    user_defined_qty: bool = False
    default: bool = False


@dataclass(frozen=True, slots=True)
class BundleOption:
    """One option (group) of a bundle product: its title, whether a choice is
    required, whether several may be chosen (checkbox, multiselect), its selections."""

    title: str
    required: bool = False
    multi: bool = False
    selections: tuple[BundleSelection, ...] = ()


@dataclass(frozen=True, slots=True)
class Links:
    related: tuple[str, ...] = ()
    crosssell: tuple[str, ...] = ()
    upsell: tuple[str, ...] = ()


@dataclass(slots=True)
class CatalogProduct:
    """One product of the catalog, all store views."""

    sku: str
    line: int | None = None  # where the product starts in the source (for errors)
    product_type: str = "simple"  # one of PRODUCT_TYPES
    attribute_set: str = "Default"
    websites: tuple[str, ...] | None = None  # website codes; None: not given (all websites)
    values: StoreValues = field(default_factory=StoreValues)  # global (admin) values
    overrides: dict[str, StoreValues] = field(default_factory=dict)  # store view -> overrides
    categories: tuple[tuple[str, ...], ...] = ()  # paths of names, root left out
    stock: Stock | None = None
    gallery: tuple[GalleryImage, ...] = ()
    variants: tuple[Variant, ...] = ()  # configurable children
    variant_labels: dict[str, str] = field(default_factory=dict)  # attribute code -> label
    parent_skus: tuple[str, ...] = ()  # configurables that list this product as a child
    links: Links = field(default_factory=Links)
    grouped: tuple[GroupedLink, ...] = ()  # grouped product's associated products
    tier_prices: tuple[TierPrice, ...] = ()
    bundle: tuple[BundleOption, ...] = ()  # a bundle product's options
    bundle_parents: tuple[str, ...] = ()  # bundles that offer this product
    product_id: int | None = None  # Magento's entity id, where the source has it (REST)
    stocks: tuple[StockLevel, ...] = ()  # per MSI stock; empty: `stock` (the legacy item)
    # The fingerprint of the record's raw rows (`sync.fingerprints`); None: the source
    # gives none, or the record must be built every run (it was built with warnings)
    fingerprint: int | None = field(default=None, compare=False)

    def values_for(self, store_view: str) -> StoreValues:
        """The values as `store_view` sees them: global overlaid with its overrides."""
        override = self.overrides.get(store_view)
        if override is None:
            return self.values
        return self.values.overlay(override)

    def stock_for(self, website: str) -> Stock | None:
        """The stock that sells on `website`: its MSI stock's level, else `stock`."""
        for level in self.stocks:
            if website in level.websites or "*" in level.websites:
                return level.stock
        return self.stock

    def in_website(self, website: str) -> bool:
        return self.websites is None or website in self.websites

    def variant_values(self) -> dict[str, set[str]]:
        """A configurable's option labels by attribute code: the children's values,
        and every configurable attribute (with no value when no child has one)."""
        values: dict[str, set[str]] = {}
        for variant in self.variants:
            for code, label in variant.options:
                values.setdefault(code, set()).add(label)
        for code in self.variant_labels:
            values.setdefault(code, set())
        return values
