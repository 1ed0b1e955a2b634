"""Multi-source inventory (MSI), source-neutral: the shop's stocks and a product's
source items become its `StockLevel`s, the same way for the REST API
(`/V1/inventory/...`) and for the export CSV (the "Stock Sources" export file).

A stock's level for a product: `qty` the sum of the quantities of its in-stock
source items on the stock's enabled sources, in stock when one of them is (as
Magento's stock index; reservations of open orders are not subtracted, see
docs/feeds-and-sources.md). Manage stock and the notify threshold stay the legacy
stock item's (they are product settings, not per source)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from catalog_sync.catalog import Stock, StockLevel
from catalog_sync.errors import ConfigError


@dataclass(frozen=True, slots=True)
class StockDef:
    stock_id: str
    sources: tuple[str, ...]  # the enabled sources linked to the stock
    websites: tuple[str, ...]  # its sales channels


@dataclass(frozen=True, slots=True)
class SourceItem:
    source: str
    quantity: float
    in_stock: bool


def stock_levels(
    items: Sequence[SourceItem], stocks: Sequence[StockDef], legacy: Stock | None
) -> tuple[StockLevel, ...]:
    """The product's level on every stock; () when it has no source item (composite
    types have none: their legacy stock item stays)."""
    if not items:
        return ()
    by_source = {i.source: i for i in items}
    manage = legacy.manage_stock if legacy else None
    notify = legacy.notify_qty if legacy else None
    out = []
    for st in stocks:
        linked = [by_source[c] for c in st.sources if c in by_source]
        selling = [i for i in linked if i.in_stock]
        qty = float(sum(i.quantity for i in selling))
        stock = Stock(qty=qty, is_in_stock=bool(selling), manage_stock=manage, notify_qty=notify)
        out.append(StockLevel(st.stock_id, st.websites, stock))
    return tuple(out)


def parse_stocks(text: str) -> tuple[StockDef, ...]:
    """`1=default:base;2=eu_north+eu_south:eu,uk`: stock id = its sources (`+`) :
    its websites (`,`), stocks joined by `;` (the export CSV does not say which
    source serves which stock; the REST API does)."""
    out = []
    for n, part in enumerate((p.strip() for p in text.split(";")), 1):
        if not part:
            continue
        sid, eq, rest = part.partition("=")
        sources, colon, websites = rest.partition(":")
        srcs = tuple(s.strip() for s in sources.split("+") if s.strip())
        sites = tuple(w.strip() for w in websites.split(",") if w.strip())
        if not eq or not colon or not sid.strip().isdigit() or not srcs or not sites:
            raise ConfigError(
                f"INVENTORY_STOCKS entry {n} {part!r}: expected "
                "<stock id>=<source>+<source>:<website>,<website>"
            )
        out.append(StockDef(sid.strip(), srcs, sites))
    return tuple(out)
