"""The inventoryStockStatus feed: one item per product on the default stock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from catalog_sync.catalog import CatalogProduct, Stock, StoreValues
from catalog_sync.feeds.inventory import INVENTORY, StockStatusItem
from catalog_sync.feeds.inventory import build_stock_items as build_dicts
from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import BuildContext
from catalog_sync.sync.canonical import encode
from tests.unit.feed_check import checked_all


def build_stock_items(product: Any, ctx: BuildContext) -> list[StockStatusItem]:
    """The builder's dicts, checked against StockStatusItem and read through it."""
    return checked_all(StockStatusItem, build_dicts(product, ctx))


NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)
CTX = BuildContext(now=NOW, store_views=(("default", "base"), ("de", "eu")))


def test_inventory_builder_one_item_on_the_default_stock() -> None:
    p = CatalogProduct(sku="MH01-S", stock=Stock(qty=100, is_in_stock=True))
    [item] = build_stock_items(p, CTX)
    assert item.model_dump(mode="json", by_alias=True) == {
        "stockId": "1",
        "sku": "MH01-S",
        "qty": 100.0,
        "isInStock": True,
        "isSalable": True,
        "lowStock": False,
        "manageStock": None,
        "deleted": False,
        "modifiedAt": "2024-03-15T12:00:00Z",
    }
    enc = encode(INVENTORY, item)
    assert (enc.key, enc.group) == ("1\x1fMH01-S", "MH01-S")


def test_inventory_builder_skips_products_without_stock() -> None:
    assert build_stock_items(CatalogProduct(sku="A"), CTX) == []


@pytest.mark.parametrize(
    ("stock", "enabled", "salable"),
    [
        (Stock(qty=5, is_in_stock=True), None, True),
        (Stock(qty=5, is_in_stock=True), False, False),  # disabled
        (Stock(qty=0, is_in_stock=False), True, False),
        (Stock(qty=0, is_in_stock=False, manage_stock=False), True, True),  # not managed
        (Stock(qty=0, is_in_stock=False, manage_stock=True), True, False),
    ],
)
def test_inventory_builder_salable_when_enabled_and_in_stock(
    stock: Stock, enabled: bool | None, salable: bool
) -> None:
    p = CatalogProduct(sku="A", stock=stock, values=StoreValues(enabled=enabled))
    [item] = build_stock_items(p, CTX)
    assert item.is_salable is salable
    assert item.is_in_stock is stock.is_in_stock


@pytest.mark.parametrize(
    ("stock", "product_type", "low"),
    [
        (Stock(qty=0.5, is_in_stock=True), "simple", True),  # default threshold 1
        (Stock(qty=1, is_in_stock=True), "simple", False),  # strictly below
        (Stock(qty=4, is_in_stock=True, notify_qty=5), "simple", True),
        (Stock(qty=5, is_in_stock=True, notify_qty=5), "simple", False),
        (Stock(qty=0, is_in_stock=True, manage_stock=False), "simple", False),
        (Stock(qty=0, is_in_stock=True), "configurable", False),
    ],
)
def test_inventory_builder_low_stock_below_the_notify_threshold(
    stock: Stock, product_type: str, low: bool
) -> None:
    [item] = build_stock_items(CatalogProduct(sku="A", stock=stock, product_type=product_type), CTX)
    assert item.low_stock is low


def test_inventory_builder_hash_normalises_numbers_and_ignores_modified_at() -> None:
    [a] = build_stock_items(CatalogProduct(sku="A", stock=Stock(qty=5, is_in_stock=True)), CTX)
    [b] = build_stock_items(
        CatalogProduct(sku="A", stock=Stock(qty=5.0, is_in_stock=True)),
        BuildContext(now=datetime(2025, 1, 1, tzinfo=UTC)),
    )
    [c] = build_stock_items(CatalogProduct(sku="A", stock=Stock(qty=4, is_in_stock=True)), CTX)
    assert encode(INVENTORY, a).hash == encode(INVENTORY, b).hash
    assert encode(INVENTORY, a).hash != encode(INVENTORY, c).hash


def test_inventory_feed_is_registered() -> None:
    spec = get_feed("inventoryStockStatus")
    assert spec is INVENTORY and not spec.aggregate
    assert spec.identity == ("stockId", "sku") and spec.group_field == "sku"
