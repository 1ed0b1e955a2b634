"""`acoPrices`: one price per product and price book.

Identity `sku` + `priceBookId`, grouped by `sku`. Per website of the product (its
prices as the website's first store view sees them):

- the base book (`priceBookId` = website code): `regular`; the special price as a
  discount `{code: "special_price", price: regular - special}` (a fixed amount off)
  while its date window is open at the run's time (so it drops at the first sync
  after the window closes: the item's content changes, and it is sent again); tier
  prices for ALL GROUPS with qty > 1 as `tierPrices` `{qty, price}`; a tier for qty 1
  (or less) is a price for every quantity: a discount `tier_qty_1`.
- a child book per customer group with tier prices of its own: the same, with the
  group's tiers combined with ALL GROUPS' (the lowest price per qty).
- none for a configurable parent (ACO prices its variants): a price there is
  reported (a warning naming the SKU and `price`) and not sent; none for a product
  without a regular price.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import Field

from catalog_sync.catalog import ALL_CUSTOMER_GROUPS, CatalogProduct, TierPrice
from catalog_sync.feeds.aco import PRICE_BOOKS, PRICES
from catalog_sync.feeds.aco.common import Wire
from catalog_sync.feeds.aco.price_books import group_book_id, groups_on, websites_of
from catalog_sync.feeds.products import special_active
from catalog_sync.feeds.spec import BuildContext, BuildError, FeedSpec

SPECIAL = "special_price"
QTY_ONE = "tier_qty_1"


class Discount(Wire):
    code: str
    price: float = Field(gt=0)


class TierPriceEntry(Wire):
    qty: float = Field(gt=1)
    price: float = Field(gt=0)


class PriceItem(Wire):
    sku: str
    price_book_id: str
    regular: float
    discounts: list[Discount] = []
    tier_prices: list[TierPriceEntry] = []


@lru_cache(maxsize=64)
def _first_views(store_views: tuple[tuple[str, str], ...]) -> dict[str, str]:
    first: dict[str, str] = {}
    for view, website in store_views:
        first.setdefault(website, view)
    return first


def _tiers(tiers: tuple[TierPrice, ...], website: str, group: str) -> dict[float, float]:
    """{qty: lowest price} of ALL GROUPS' and `group`'s tiers on `website`."""
    out: dict[float, float] = {}
    for t in tiers:
        if t.website not in (None, website):
            continue
        if t.customer_group not in (ALL_CUSTOMER_GROUPS, group):
            continue
        qty, value = float(t.qty), float(t.value)
        if qty not in out or value < out[qty]:
            out[qty] = value
    return out


def _amount(regular: float, price: float) -> float | None:
    off = round(regular - price, 4)
    return off if off > 0 else None


def _price(
    sku: str, book: str, regular: float, special: float | None, tiers: dict[float, float]
) -> dict[str, Any]:
    discounts = []
    if special is not None and (off := _amount(regular, special)) is not None:
        discounts.append({"code": SPECIAL, "price": off})
    low = [v for q, v in tiers.items() if q <= 1]
    if low and (off := _amount(regular, min(low))) is not None:
        discounts.append({"code": QTY_ONE, "price": off})
    return {
        "sku": sku,
        "priceBookId": book,
        "regular": regular,
        "discounts": discounts,
        "tierPrices": [
            {"qty": q, "price": tiers[q]} for q in sorted(tiers) if q > 1 and tiers[q] > 0
        ],
    }


def build_price_items(product: CatalogProduct, ctx: BuildContext) -> list[dict[str, Any]]:
    if product.product_type == "configurable":
        if product.values.price or any(o.price for o in product.overrides.values()):
            raise BuildError(
                "price",
                "a configurable parent has no price in ACO (its variants do): not sent",
                severity="warning",
            )
        return []
    first = _first_views(tuple(ctx.store_views))
    items = []
    for website in websites_of(product, ctx):
        v = product.values_for(first[website])
        if v.price is None:
            continue
        regular = float(v.price)
        special = (
            float(v.special_price)
            if v.special_price is not None and special_active(v, ctx.now)
            else None
        )
        tiers = product.tier_prices
        items.append(_price(product.sku, website, regular, special, _tiers(tiers, website, "")))
        for group in groups_on(product, website):
            book = group_book_id(website, group)
            items.append(_price(product.sku, book, regular, special, _tiers(tiers, website, group)))
    return items


ACO_PRICES = FeedSpec(
    name=PRICES,
    identity=("sku", "priceBookId"),
    group_field="sku",
    model=PriceItem,
    build=build_price_items,
    keys_only_tombstone=True,
    after=(PRICE_BOOKS,),
)
