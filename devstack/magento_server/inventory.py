"""The fake Magento's multi-source inventory (MSI) and its web API permissions (ACL).

MSI (`/V1/inventory/...`, shapes of the 2.4 schema): sources {source_code, name,
enabled, country_id, postcode}, stocks {stock_id, name, extension_attributes
{sales_channels [{type: "website", code}]}}, stock-source links {stock_id,
source_code, priority}, source items {sku, source_code, quantity, status}. Without a
setup the shop is single-source, as a fresh 2.4: source `default`, stock 1 on every
website, one source item per simple product from its legacy stock item. A setup is
read from a "Stock Sources" export file (`source_code,sku,status,quantity`).

ACL: each route needs one resource (Magento's `webapi.xml`); a token without it is
refused as Magento refuses it: HTTP 401, "The consumer isn't authorized to access
%resources." naming the resource.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMPOSITE = frozenset({"configurable", "bundle", "grouped"})

# route prefix -> ACL resource (the longest matching prefix wins)
ACL: dict[str, str] = {
    "products": "Magento_Catalog::products",
    "products/attributes": "Magento_Catalog::attributes_attributes",
    "products/attribute-sets": "Magento_Catalog::sets",
    "categories": "Magento_Catalog::categories",
    "stockItems": "Magento_CatalogInventory::cataloginventory",
    "stockStatuses": "Magento_CatalogInventory::cataloginventory",
    "customerGroups": "Magento_Customer::group",
    "store": "Magento_Backend::store",
    "inventory/sources": "Magento_InventoryApi::source",
    "inventory/source-items": "Magento_InventoryApi::source",
    "inventory/stocks": "Magento_InventoryApi::stock",
    "inventory/stock-source-links": "Magento_InventoryApi::stock",
}
ALL_RESOURCES = frozenset(ACL.values())


def resource_of(route: str) -> str | None:
    best = ""
    for prefix in ACL:
        if (route == prefix or route.startswith(prefix + "/")) and len(prefix) > len(best):
            best = prefix
    return ACL.get(best)


@dataclass(frozen=True)
class Stock:
    stock_id: int
    name: str
    sources: tuple[str, ...]  # linked source codes, by priority
    websites: tuple[str, ...]  # sales channels


@dataclass
class Inventory:
    """The MSI setup the fake serves (see the module docstring)."""

    sources: dict[str, bool]  # source code -> enabled
    stocks: list[Stock]
    items: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        stocks: Sequence[Stock],
        disabled: Sequence[str] = (),
    ) -> Inventory:
        """A setup from a "Stock Sources" export file and the stocks' layout."""
        items: list[dict[str, Any]] = []
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                items.append(
                    {
                        "sku": row["sku"],
                        "source_code": row["source_code"],
                        "quantity": float(row["quantity"] or 0),
                        "status": int(row["status"] or 0),
                    }
                )
        codes = {str(i["source_code"]) for i in items} | {c for s in stocks for c in s.sources}
        return cls({c: c not in disabled for c in sorted(codes)}, list(stocks), items)

    def routes(self) -> dict[str, list[dict[str, Any]]]:
        """The four list endpoints' items."""
        return {
            "inventory/sources": [
                {
                    "source_code": code,
                    "name": code.replace("_", " ").title(),
                    "enabled": enabled,
                    "country_id": "US",
                    "postcode": "00000",
                }
                for code, enabled in self.sources.items()
            ],
            "inventory/stocks": [
                {
                    "stock_id": s.stock_id,
                    "name": s.name,
                    "extension_attributes": {
                        "sales_channels": [{"type": "website", "code": w} for w in s.websites]
                    },
                }
                for s in self.stocks
            ],
            "inventory/stock-source-links": [
                {"stock_id": s.stock_id, "source_code": code, "priority": n}
                for s in self.stocks
                for n, code in enumerate(s.sources, 1)
            ],
            "inventory/source-items": self.items,
        }


def single_source(
    websites: Sequence[str], stock_items: list[tuple[str, str, dict[str, Any]]]
) -> Inventory:
    """A fresh 2.4 shop: source `default`, stock 1 on every website; the source items
    follow the legacy stock items of the simple products (sku, type, stock item)."""
    items = [
        {
            "sku": sku,
            "source_code": "default",
            "quantity": float(item["qty"] or 0),
            "status": 1 if item["is_in_stock"] else 0,
        }
        for sku, ptype, item in stock_items
        if ptype not in COMPOSITE
    ]
    return Inventory(
        {"default": True}, [Stock(1, "Default Stock", ("default",), tuple(websites))], items
    )
