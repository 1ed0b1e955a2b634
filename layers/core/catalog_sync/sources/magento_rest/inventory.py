"""MSI through the REST API: sources, stocks, their links and the source items.

Read where the shop has them (`/V1/inventory/...`; a 404 means the MSI modules are
off). A single-source shop (one enabled source, one stock) keeps the legacy stock
item, which there holds the same quantity. A refusal (the integration lacks
`Magento_InventoryApi::source` / `::stock`) degrades to the legacy stock item with a
warning: on a multi-source shop that item holds the default source only."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from catalog_sync.errors import SourceError
from catalog_sync.records import SourceIssue
from catalog_sync.sources.inventory import SourceItem, StockDef
from catalog_sync.sources.magento_rest.client import (
    LIST_PAGE_SIZE,
    RefusedError,
    _FetchFailedError,
    search_criteria,
)
from catalog_sync.sources.magento_rest.parts import _number

if TYPE_CHECKING:
    from catalog_sync.sources.magento_rest.mapper import _Mapper
    from catalog_sync.sources.magento_rest.source import MagentoRestSource

SOURCES = "/rest/all/V1/inventory/sources"
STOCKS = "/rest/all/V1/inventory/stocks"
LINKS = "/rest/all/V1/inventory/stock-source-links"
SOURCE_ITEMS = "/rest/all/V1/inventory/source-items"


def read_inventory(src: MagentoRestSource, pool: ThreadPoolExecutor, mapper: _Mapper) -> None:
    """Fill `mapper.stock_defs` and `mapper.source_items` on a multi-source shop."""
    try:
        first = src._get(SOURCES, search_criteria((), (), LIST_PAGE_SIZE, 1))
    except _FetchFailedError as exc:
        if exc.status == 404:
            return  # no MSI: the legacy stock item is the stock
        raise SourceError(f"cannot read the inventory sources from Magento: {exc}") from exc
    except RefusedError as exc:
        mapper.warn(
            ("inventory",),
            SourceIssue(
                f"multi-source inventory cannot be read ({exc.resource or 'a permission'} "
                f"missing, HTTP {exc.status} on GET {exc.path}): stock comes from the legacy "
                "stock item, which on a multi-source shop holds the default source only",
                field="stock",
                severity="warning",
            ),
        )
        return
    sources = first.get("items") or []
    if int(first.get("total_count") or 0) > len(sources):
        sources = src._list_all(pool, SOURCES, "inventory sources")
    enabled = {str(s["source_code"]) for s in sources if _enabled(s.get("enabled"))}
    stocks = src._list_all(pool, STOCKS, "inventory stocks")
    if len(enabled) <= 1 and len(stocks) <= 1:
        return  # single source: the legacy stock item holds the same quantity
    links = src._list_all(pool, LINKS, "inventory stock-source links")
    mapper.stock_defs = _stock_defs(stocks, links, enabled, set(mapper.websites.values()))
    items = mapper.source_items
    for it in src._list_all(pool, SOURCE_ITEMS, "inventory source items", LIST_PAGE_SIZE):
        code = str(it.get("source_code"))
        if code not in enabled:
            continue
        sku = str(it.get("sku") or "")
        try:
            item = SourceItem(code, _number(it.get("quantity") or 0), str(it.get("status")) == "1")
        except ValueError as exc:
            mapper.warn(
                ("source-item", sku, code),
                SourceIssue(
                    f"source item on {code!r}: {exc}; left out",
                    sku=sku or None,
                    field="quantity",
                    severity="warning",
                ),
            )
            continue
        items.setdefault(sku.lower(), []).append(item)


def _enabled(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def _stock_defs(
    stocks: list[dict[str, Any]],
    links: list[dict[str, Any]],
    enabled: set[str],
    websites: set[str],
) -> tuple[StockDef, ...]:
    linked: dict[str, list[tuple[int, str]]] = {}
    for link in links:
        code = str(link.get("source_code"))
        if code in enabled:
            sid = str(link.get("stock_id"))
            linked.setdefault(sid, []).append((int(link.get("priority") or 0), code))
    out = []
    for st in sorted(stocks, key=lambda s: int(s.get("stock_id") or 0)):
        sid = str(st.get("stock_id"))
        channels = (st.get("extension_attributes") or {}).get("sales_channels") or ()
        sites = tuple(
            str(c.get("code"))
            for c in channels
            if c.get("type", "website") == "website" and str(c.get("code")) in websites
        )
        sources = tuple(code for _, code in sorted(linked.get(sid, [])))
        out.append(StockDef(sid, sources, sites))
    return tuple(out)
