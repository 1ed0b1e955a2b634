"""The `inventoryStockStatus` feed: one item per product and stock.

Identity `stockId` + `sku`, grouped by `sku`. A single-source shop has one stock, the
default (`stockId` "1"), whose item is the legacy stock item. A multi-source (MSI)
shop gives a product a level per stock (`CatalogProduct.stocks`: from the REST API's
`/V1/inventory/...`, or from the "Stock Sources" export file with `INVENTORY_STOCKS`),
one item each. A product without stock data has no item.

- `isInStock`, `qty`, `manageStock`: as the source says (`manageStock` null: the store
  configuration decides, which is "yes" by default).
- `isSalable`: the product is enabled (globally) and in stock; a product whose stock is
  not managed is always in stock, as in Magento.
- `lowStock`: stock is managed and `qty` is below the notify threshold
  (`notify_on_stock_below`, strictly below as in Magento's low stock report; 1 when
  the store configuration decides). Never for composite types (configurable, bundle,
  grouped), whose own qty means nothing.
"""

from __future__ import annotations

from typing import Any

from catalog_sync.catalog import CatalogProduct, Stock
from catalog_sync.feeds.spec import BuildContext, FeedItem, FeedSpec

DEFAULT_STOCK_ID = "1"
DEFAULT_NOTIFY_QTY = 1.0  # Magento's default "Notify for Quantity Below"
COMPOSITE_TYPES = frozenset({"configurable", "bundle", "grouped"})


class StockStatusItem(FeedItem):
    stock_id: str
    sku: str
    qty: float = 0.0
    is_in_stock: bool
    is_salable: bool
    low_stock: bool = False
    manage_stock: bool | None = None


def build_stock_items(product: CatalogProduct, ctx: BuildContext) -> list[dict[str, Any]]:
    """The product's stock items, as JSON-ready dicts shaped as `StockStatusItem`."""
    if product.stocks:
        return [_item(product, level.stock_id, level.stock, ctx) for level in product.stocks]
    if product.stock is None:
        return []
    return [_item(product, DEFAULT_STOCK_ID, product.stock, ctx)]


def _item(
    product: CatalogProduct, stock_id: str, stock: Stock, ctx: BuildContext
) -> dict[str, Any]:
    qty = float(stock.qty)
    managed = stock.manage_stock is not False
    in_stock = stock.is_in_stock or not managed
    notify = DEFAULT_NOTIFY_QTY if stock.notify_qty is None else float(stock.notify_qty)
    low = managed and qty < notify and product.product_type not in COMPOSITE_TYPES
    return {
        "deleted": False,
        "modifiedAt": ctx.now,
        "stockId": stock_id,
        "sku": product.sku,
        "qty": qty,
        "isInStock": stock.is_in_stock,
        "isSalable": in_stock and product.values.enabled is not False,
        "lowStock": low,
        "manageStock": stock.manage_stock,
    }


INVENTORY = FeedSpec(
    name="inventoryStockStatus",
    identity=("stockId", "sku"),
    group_field="sku",
    model=StockStatusItem,
    build=build_stock_items,
)
