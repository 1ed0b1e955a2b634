"""The prices feed: one item per product, website and customer group."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from catalog_sync.catalog import (
    ALL_CUSTOMER_GROUPS,
    CatalogProduct,
    StoreValues,
    TierPrice,
)
from catalog_sync.feeds.prices import PRICES, PriceItem
from catalog_sync.feeds.prices import build_price_items as build_dicts
from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import BuildContext
from catalog_sync.sync.canonical import encode
from tests.unit.feed_check import checked_all


def build_price_items(product: Any, ctx: BuildContext) -> list[PriceItem]:
    """The builder's dicts, checked against PriceItem and read through it."""
    return checked_all(PriceItem, build_dicts(product, ctx))


NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)
VIEWS = (("default", "base"), ("fr", "base"), ("de", "eu"), ("us", "us"))
CTX = BuildContext(now=NOW, store_views=VIEWS, feeds=frozenset({"products", "prices"}))


def by_key(items: list[PriceItem]) -> dict[tuple[str, str], PriceItem]:
    return {(i.website_code, i.customer_group_code): i for i in items}


def test_prices_builder_one_base_item_per_website_of_the_product() -> None:
    p = CatalogProduct(sku="MH01", websites=("base", "eu", "xx"), values=StoreValues(price=52))
    items = by_key(build_price_items(p, CTX))
    assert sorted(items) == [("base", "0"), ("eu", "0")]  # us: not the product's; xx: no view
    item = items[("base", "0")]
    assert (item.sku, item.regular, item.final_price, item.tier_prices) == ("MH01", 52.0, 52.0, [])
    assert item.modified_at == NOW and item.deleted is False
    assert encode(PRICES, item).key == "MH01\x1f0\x1fbase"
    assert encode(PRICES, item).group == "MH01"


def test_prices_builder_reads_the_websites_first_store_view() -> None:
    p = CatalogProduct(
        sku="A",
        values=StoreValues(price=52.0),
        overrides={"de": StoreValues(price=45.0), "fr": StoreValues(price=1.0)},
    )
    items = by_key(build_price_items(p, CTX))
    assert items[("eu", "0")].regular == 45.0
    assert items[("base", "0")].regular == 52.0  # default comes before fr
    assert items[("us", "0")].regular == 52.0


@pytest.mark.parametrize(
    ("start", "end", "final"),
    [
        (None, None, 40.0),
        (datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 15, tzinfo=UTC), 40.0),
        (datetime(2024, 3, 16, tzinfo=UTC), None, 52.0),
        (None, datetime(2024, 3, 14, tzinfo=UTC), 52.0),
    ],
)
def test_prices_builder_sends_the_special_window_and_the_final_price_now(
    start: datetime | None, end: datetime | None, final: float
) -> None:
    values = StoreValues(price=52.0, special_price=40.0, special_from=start, special_to=end)
    [item] = build_price_items(CatalogProduct(sku="A", values=values), BuildContext(now=NOW))
    assert item.special_price == 40.0
    assert (item.special_from, item.special_to) == (start, end)
    assert item.final_price == final


def test_prices_builder_hash_changes_when_the_special_window_opens() -> None:
    values = StoreValues(
        price=52.0, special_price=40.0, special_from=datetime(2024, 3, 16, tzinfo=UTC)
    )
    p = CatalogProduct(sku="A", values=values)
    [before] = build_price_items(p, BuildContext(now=NOW))
    [after] = build_price_items(p, BuildContext(now=datetime(2024, 3, 16, 1, tzinfo=UTC)))
    [later] = build_price_items(p, BuildContext(now=datetime(2024, 3, 17, tzinfo=UTC)))
    assert (before.final_price, after.final_price) == (52.0, 40.0)
    assert encode(PRICES, before).hash != encode(PRICES, after).hash
    assert encode(PRICES, after).hash == encode(PRICES, later).hash  # only modifiedAt moved


def test_prices_builder_one_item_per_customer_group_with_tier_prices() -> None:
    tiers = (
        TierPrice(ALL_CUSTOMER_GROUPS, 10, 48.0),
        TierPrice(ALL_CUSTOMER_GROUPS, 5, 50.0),
        TierPrice("Wholesale", 10, 45.0),
        TierPrice("Wholesale", 5, 51.0),  # ALL GROUPS' 50 is lower
        TierPrice("Wholesale", 1, 49.0),
        TierPrice("Retailer", 2, 47.0, website="eu"),
    )
    p = CatalogProduct(sku="A", values=StoreValues(price=52.0), tier_prices=tiers)
    items = by_key(build_price_items(p, CTX))
    assert sorted(items) == [
        ("base", "0"),
        ("base", "Wholesale"),
        ("eu", "0"),
        ("eu", "Retailer"),
        ("eu", "Wholesale"),
        ("us", "0"),
        ("us", "Wholesale"),
    ]
    base = items[("base", "0")].model_dump(mode="json", by_alias=True)
    assert base["tierPrices"] == [{"qty": 5.0, "value": 50.0}, {"qty": 10.0, "value": 48.0}]
    assert base["customerGroupCode"] == "0" and base["finalPrice"] == 52.0
    wholesale = items[("base", "Wholesale")]
    assert [(t.qty, t.value) for t in wholesale.tier_prices] == [(1, 49), (5, 50), (10, 45)]
    assert wholesale.final_price == 49.0  # the tier price for qty 1
    assert wholesale.regular == 52.0
    retailer = items[("eu", "Retailer")]
    assert [(t.qty, t.value) for t in retailer.tier_prices] == [(2, 47), (5, 50), (10, 48)]


def test_prices_builder_hash_stable_under_reorder_and_number_format() -> None:
    tiers = (
        TierPrice(ALL_CUSTOMER_GROUPS, 5, 50.0),
        TierPrice("Wholesale", 10, 45.0),
        TierPrice(ALL_CUSTOMER_GROUPS, 10, 48.0),
    )
    a = CatalogProduct(sku="A", values=StoreValues(price=52.0), tier_prices=tiers)
    b = CatalogProduct(
        sku="A",
        values=StoreValues(price=52),
        tier_prices=(
            TierPrice(ALL_CUSTOMER_GROUPS, 10.0, 48),
            TierPrice("Wholesale", 10, 45),
            TierPrice(ALL_CUSTOMER_GROUPS, 5, 50),
        ),
    )
    ea = {e.key: e.hash for e in (encode(PRICES, i) for i in build_price_items(a, CTX))}
    ctx_b = BuildContext(now=datetime(2025, 1, 1, tzinfo=UTC), store_views=VIEWS)
    eb = {e.key: e.hash for e in (encode(PRICES, i) for i in build_price_items(b, ctx_b))}
    assert ea == eb and len(ea) == 6


def test_prices_builder_skips_products_without_any_price() -> None:
    assert build_price_items(CatalogProduct(sku="A"), CTX) == []
    parent = CatalogProduct(sku="P", product_type="configurable")
    assert build_price_items(parent, CTX) == []
    priced_parent = CatalogProduct(
        sku="P", product_type="configurable", values=StoreValues(price=30.0)
    )
    assert len(build_price_items(priced_parent, CTX)) == 3
    only_tiers = CatalogProduct(sku="T", tier_prices=(TierPrice("Wholesale", 1, 9.0, "eu"),))
    [item] = build_price_items(only_tiers, CTX)
    assert (item.website_code, item.customer_group_code, item.regular) == ("eu", "Wholesale", None)
    assert item.final_price == 9.0


def test_prices_feed_is_registered() -> None:
    spec = get_feed("prices")
    assert spec is PRICES and not spec.aggregate
    assert spec.identity == ("sku", "customerGroupCode", "websiteCode")
    assert spec.group_field == "sku"
