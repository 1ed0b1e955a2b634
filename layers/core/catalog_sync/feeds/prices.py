"""The `prices` feed: one item per product, website and customer group.

Identity `sku` + `customerGroupCode` + `websiteCode`, grouped by `sku`.

- Websites: the product's websites among the websites of the configured store views.
  Prices are read as the website's first configured store view sees them (Magento
  keeps one price per website when the price scope is "website").
- Customer groups: the item with code `"0"` is the base price for every group (Magento's
  NOT LOGGED IN group has id 0); it carries the tier prices for ALL GROUPS. A group
  with tier prices of its own gets one more item, carrying ALL GROUPS' tiers and its
  own (the lowest value per quantity). Tier prices of group `"0"` itself go into the
  base item.
- The special price is sent with its window (`specialFrom`/`specialTo`), so the SaaS
  can apply it, plus `finalPrice` at the run's time: the lowest of the regular price,
  the special price while active and a tier price for quantity 1. `finalPrice` changes
  when the window opens or closes, and so does the item's hash: the item is sent again
  on the first run after the change, which is what keeps the SaaS price right.
- A product with no price at all (no regular, special or tier price) has no items;
  configurable parents are emitted when the source gives them a price (the CSV does).
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from catalog_sync.catalog import ALL_CUSTOMER_GROUPS, CatalogProduct, TierPrice
from catalog_sync.feeds.products import special_active
from catalog_sync.feeds.spec import BuildContext, FeedItem, FeedSpec, WireModel
from catalog_sync.sync.canonical import json_datetime

BASE_GROUP = "0"  # the base price item: every customer group


class TierPriceEntry(WireModel):
    qty: float
    value: float


class PriceItem(FeedItem):
    sku: str
    customer_group_code: str
    website_code: str
    regular: float | None = None
    special_price: float | None = None
    special_from: datetime | None = None
    special_to: datetime | None = None
    final_price: float | None = None
    tier_prices: list[TierPriceEntry] = []  # sorted by qty


@lru_cache(maxsize=64)
def _websites(store_views: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """(website, its first store view) for each website of the store views, in order."""
    first: dict[str, str] = {}
    for view, website in store_views:
        first.setdefault(website, view)
    return tuple(first.items())


def _tiers_by_group(tiers: tuple[TierPrice, ...], website: str) -> dict[str, dict[float, float]]:
    """Tier prices applying on `website`: group -> {qty: lowest value}."""
    out: dict[str, dict[float, float]] = {}
    for t in tiers:
        if t.website is not None and t.website != website:
            continue
        group = BASE_GROUP if t.customer_group == ALL_CUSTOMER_GROUPS else t.customer_group
        by_qty = out.setdefault(group, {})
        qty, value = float(t.qty), float(t.value)
        old = by_qty.get(qty)
        if old is None or value < old:
            by_qty[qty] = value
    return out


def _combine(base: dict[float, float], own: dict[float, float]) -> dict[float, float]:
    out = dict(base)
    for qty, value in own.items():
        old = out.get(qty)
        if old is None or value < old:
            out[qty] = value
    return out


def _final(regular: float | None, special: float | None, tiers: dict[float, float]) -> float | None:
    candidates = [p for p in (regular, special) if p is not None]
    candidates.extend(v for q, v in tiers.items() if q <= 1.0)
    return min(candidates) if candidates else None


def build_price_items(product: CatalogProduct, ctx: BuildContext) -> list[dict[str, Any]]:
    """The product's price items, as JSON-ready dicts shaped as `PriceItem`."""
    items: list[dict[str, Any]] = []
    now = ctx.now
    tiers = product.tier_prices
    for website, view in _websites(tuple(ctx.store_views)):
        if not product.in_website(website):
            continue
        v = product.values_for(view) if product.overrides else product.values
        regular = None if v.price is None else float(v.price)
        special = None if v.special_price is None else float(v.special_price)
        by_group = _tiers_by_group(tiers, website) if tiers else {}
        if regular is None and special is None and not by_group:
            continue
        active = special if special is not None and special_active(v, now) else None
        start, end = v.special_from, v.special_to
        special_from = None if start is None else json_datetime(start)
        special_to = None if end is None else json_datetime(end)
        base = by_group.pop(BASE_GROUP, {})
        groups: list[tuple[str, dict[float, float]]] = []
        if regular is not None or special is not None or base:
            groups.append((BASE_GROUP, base))
        for group in sorted(by_group):
            groups.append((group, _combine(base, by_group[group])))
        for group, group_tiers in groups:
            items.append(
                {
                    "deleted": False,
                    "modifiedAt": now,
                    "sku": product.sku,
                    "customerGroupCode": group,
                    "websiteCode": website,
                    "regular": regular,
                    "specialPrice": special,
                    "specialFrom": special_from,
                    "specialTo": special_to,
                    "finalPrice": _final(regular, active, group_tiers),
                    "tierPrices": [
                        {"qty": q, "value": group_tiers[q]} for q in sorted(group_tiers)
                    ],
                }
            )
    return items


PRICES = FeedSpec(
    name="prices",
    identity=("sku", "customerGroupCode", "websiteCode"),
    group_field="sku",
    model=PriceItem,
    build=build_price_items,
)
