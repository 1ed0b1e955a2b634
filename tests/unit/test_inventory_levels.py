"""MSI stock levels (sources/inventory.py) and the export CSV's Stock Sources file."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog_sync.catalog import CatalogProduct, Stock, StockLevel
from catalog_sync.errors import ConfigError, SourceError
from catalog_sync.sources.inventory import SourceItem, StockDef, parse_stocks, stock_levels
from catalog_sync.sources.magento_csv import MagentoCsvSource

SMALL = Path(__file__).parent.parent / "fixtures" / "catalogs" / "small.csv"


def test_parse_stocks_reads_the_layout_and_names_a_bad_entry() -> None:
    assert parse_stocks("1=default:base; 2=eu_a+eu_b:eu,uk;") == (
        StockDef("1", ("default",), ("base",)),
        StockDef("2", ("eu_a", "eu_b"), ("eu", "uk")),
    )
    assert parse_stocks("") == ()
    with pytest.raises(ConfigError, match="entry 2 'x=eu'"):
        parse_stocks("1=default:base;x=eu")


def test_stock_levels_sum_in_stock_items_on_each_stocks_sources() -> None:
    stocks = (StockDef("1", ("default",), ("base",)), StockDef("2", ("a", "b"), ("eu",)))
    legacy = Stock(qty=9.0, is_in_stock=True, manage_stock=False, notify_qty=2.0)
    items = [
        SourceItem("default", 3.0, True),
        SourceItem("a", 4.0, False),
        SourceItem("b", 1.5, True),
    ]
    assert stock_levels(items, stocks, legacy) == (
        StockLevel("1", ("base",), Stock(3.0, True, False, 2.0)),
        StockLevel("2", ("eu",), Stock(1.5, True, False, 2.0)),
    )
    assert stock_levels([], stocks, legacy) == ()
    only_a = stock_levels([SourceItem("a", 4.0, False)], stocks, None)
    assert [lv.stock for lv in only_a] == [Stock(0.0, False), Stock(0.0, False)]


def test_stock_for_picks_the_websites_stock_and_falls_back_to_the_legacy_item() -> None:
    eu = StockLevel("2", ("eu",), Stock(5.0, True))
    product = CatalogProduct("X", stock=Stock(1.0, True), stocks=(eu,))
    assert product.stock_for("eu") == Stock(5.0, True)
    assert product.stock_for("base") == Stock(1.0, True)
    anywhere = CatalogProduct("Y", stocks=(StockLevel("1", ("*",), Stock(2.0, True)),))
    assert anywhere.stock_for("base") == Stock(2.0, True)


def test_csv_source_reads_the_stock_sources_file_and_reports_a_bad_row(tmp_path: Path) -> None:
    sources = tmp_path / "stock_sources.csv"
    sources.write_text(
        "source_code,sku,status,quantity\n"
        "default,24-MB01,1,7.0000\n"
        "eu,24-MB01,1,2\n"
        "eu,MS-OFF,1,lots\n"
        "default,MS-OFF,2,1\n"
        "default,NOT-IN-CATALOG,1,1\n",
        encoding="utf-8",
    )
    src = MagentoCsvSource(
        str(SMALL), stock_sources=str(sources), stocks=parse_stocks("1=default:base;2=eu:eu")
    )
    products = {p.sku: p for p in src.read() if isinstance(p, CatalogProduct)}
    assert [(lv.stock_id, lv.stock.qty) for lv in products["24-MB01"].stocks] == [
        ("1", 7.0),
        ("2", 2.0),
    ]
    assert products["MS-OFF"].stocks == ()  # both of its rows were bad
    bad = {(i.line, i.sku, i.field) for i in src.report().issues if i.severity == "warning"}
    assert bad == {(4, "MS-OFF", "quantity"), (5, "MS-OFF", "status")}
    assert src.report().complete is True
    one_stock = MagentoCsvSource(str(SMALL), stock_sources=str(sources))
    levels = {p.sku: p.stocks for p in one_stock.read() if isinstance(p, CatalogProduct)}
    assert levels["24-MB01"] == (StockLevel("1", ("*",), Stock(9.0, True)),)


def test_csv_source_without_the_optional_stock_sources_file_keeps_the_legacy_item(
    tmp_path: Path,
) -> None:
    src = MagentoCsvSource(
        str(SMALL), stock_sources=str(tmp_path / "none.csv"), stock_sources_optional=True
    )
    assert all(p.stocks == () for p in src.read() if isinstance(p, CatalogProduct))
    strict = MagentoCsvSource(str(SMALL), stock_sources=str(tmp_path / "none.csv"))
    with pytest.raises(SourceError, match=r"none\.csv"):
        list(strict.read())
