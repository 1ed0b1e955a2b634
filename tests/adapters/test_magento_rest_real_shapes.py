"""The REST source against the fake Magento in real 2.4 shapes (issue 13): what real
stores answer and the first fake did not (price 0 on parents, leftover option ids,
NULL quantities, input limits, ACL refusals, inactive views, MSI), and the export CSV
of the same catalog giving the same records."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import pytest

from catalog_sync.catalog import CatalogProduct, Stock, StockLevel
from catalog_sync.errors import SourceError
from catalog_sync.feeds.inventory import build_stock_items
from catalog_sync.feeds.prices import build_price_items
from catalog_sync.feeds.products import build_product_items
from catalog_sync.feeds.spec import BuildContext
from catalog_sync.records import SourceIssue
from catalog_sync.sources.inventory import parse_stocks
from catalog_sync.sources.magento_csv import MagentoCsvSource
from catalog_sync.sources.magento_rest import MagentoRestSource
from devstack.magento_server import MagentoApiServer
from tests.fixtures.featured import STOCKS, featured_server, write_featured

TOKEN = "shop-token"
SMALL = Path(__file__).parent.parent / "fixtures" / "catalogs" / "small.csv"
CATALOG_ONLY = {
    "Magento_Catalog::products",
    "Magento_Catalog::attributes_attributes",
    "Magento_Catalog::sets",
    "Magento_Catalog::categories",
    "Magento_CatalogInventory::cataloginventory",
    "Magento_Backend::store",
}


def read(src: MagentoRestSource | MagentoCsvSource) -> dict[str, CatalogProduct]:
    out = {}
    for entry in src.read():
        assert isinstance(entry, CatalogProduct), entry
        out[entry.sku] = entry
    return out


def rest(server: MagentoApiServer, **kw: object) -> MagentoRestSource:
    kw.setdefault("sleep", lambda _s: None)
    return MagentoRestSource(server.url, lambda: TOKEN, **kw)  # type: ignore[arg-type]


def warnings(src: MagentoRestSource) -> list[SourceIssue]:
    return [i for i in src.report().issues if i.severity == "warning"]


@pytest.fixture
def featured(tmp_path: Path) -> tuple[Path, Path]:
    return write_featured(tmp_path)


@pytest.fixture
def shop(featured: tuple[Path, Path]) -> Iterator[MagentoApiServer]:
    with featured_server(*featured, TOKEN) as server:
        yield server


@pytest.fixture
def small() -> Iterator[MagentoApiServer]:
    with MagentoApiServer(SMALL, token=TOKEN) as server:
        yield server


def test_configurable_and_dynamic_bundle_served_with_price_0_get_no_price(
    shop: MagentoApiServer,
) -> None:
    shop.input_limits = False  # this test is about something else
    listed = rest(shop)._get("/rest/all/V1/products", [("searchCriteria[pageSize]", "300")])
    prices = {it["sku"]: it.get("price") for it in listed["items"]}
    assert prices["SYN-CFG"] == 0 and prices["SYN-BDL"] == 0  # as Magento answers
    products = read(rest(shop))
    assert products["SYN-CFG"].values.price is None
    assert products["SYN-BDL"].values.price is None
    ctx = BuildContext(now=datetime(2024, 3, 1, tzinfo=UTC), feeds=frozenset({"prices"}))
    assert build_price_items(products["SYN-CFG"], ctx) == []  # no "regular 0, final 0"
    assert [i["regular"] for i in build_price_items(products["SYN-01"], ctx)] == [1.0]


def test_an_unknown_option_id_is_kept_raw_with_one_warning(small: MagentoApiServer) -> None:
    black = small.catalog.options["color"]["Black"]
    small.delete_option("color", "Black")
    src = rest(small)
    products = read(src)
    assert products["MH01-XS-Black"].values.attributes["color"] == (str(black),)
    assert products["MH01"].variants[0].options == (("size", "XS"), ("color", str(black)))
    issues = [i for i in warnings(src) if i.sku == "MH01-XS-Black"]
    assert len(issues) == 1  # not once more for the store views
    assert issues[0].field == "color" and repr(str(black)) in issues[0].message


def test_a_null_quantity_is_read_as_the_export_reads_its_empty_cell(
    shop: MagentoApiServer, featured: tuple[Path, Path]
) -> None:
    shop.input_limits = False  # this test is about something else
    low = rest(shop)._get(
        "/rest/all/V1/stockItems/lowStock", [("scopeId", "0"), ("qty", "1e12"), ("pageSize", "300")]
    )
    assert "SYN-03" not in {shop.catalog.by_id[i["product_id"]].sku for i in low["items"]}
    products = read(rest(shop, store_views=["default"]))
    assert products["SYN-03"].stock == Stock(qty=0.0, is_in_stock=True)
    from_csv = read(MagentoCsvSource(str(featured[0])))
    assert products["SYN-03"].stock == from_csv["SYN-03"].stock


def test_attribute_sets_are_paged_under_the_input_limits(shop: MagentoApiServer) -> None:
    unpaged = rest(shop)._get(
        "/rest/all/V1/products/attribute-sets/sets/list", [("searchCriteria", "")]
    )
    assert len(unpaged["items"]) == 20 and unpaged["total_count"] == 26  # Default and Set01..Set25
    products = read(rest(shop))
    assert products["SYN-25"].attribute_set == "Set25"


def test_an_acl_limited_token_degrades_on_customer_groups_only(small: MagentoApiServer) -> None:
    small.acl = frozenset(CATALOG_ONLY)
    small.corrupt(
        "24-MB01",
        "tier_prices",
        [
            {
                "customer_group_id": 2,
                "qty": 5,
                "value": 30,
                "extension_attributes": {"website_id": 0},
            }
        ],
    )
    src = rest(small)
    products = read(src)
    assert len(products) == 12  # nothing aborted midway
    assert products["24-MB01"].tier_prices[0].customer_group == "Wholesale"
    [groups] = [i for i in warnings(src) if i.field == "tier_prices"]
    assert "Magento_Customer::group" in groups.message
    small.acl = frozenset(CATALOG_ONLY - {"Magento_Catalog::categories"})
    with pytest.raises(SourceError, match="Magento_Catalog::categories") as err:
        read(rest(small))
    assert "enable_integration_as_bearer" in str(err.value)
    assert TOKEN not in str(err.value)


def test_inactive_store_views_are_not_read(shop: MagentoApiServer) -> None:
    shop.input_limits = False  # this test is about something else
    src = rest(shop)
    read(src)
    assert src.report().store_views == ["default", "fr", "eu_en"]
    assert not any("/rest/old/" in r for r in shop.requests)


def test_an_msi_shop_with_two_stocks(shop: MagentoApiServer) -> None:
    shop.input_limits = False  # this test is about something else
    products = read(rest(shop))
    syn1 = products["SYN-01"]  # default 1; eu_north 4 (in stock); eu_south 2.5
    assert syn1.stocks == (
        StockLevel("1", ("base",), Stock(qty=1.0, is_in_stock=True)),
        StockLevel("2", ("eu",), Stock(qty=6.5, is_in_stock=True)),
    )
    assert products["SYN-05"].stocks[1].stock == Stock(qty=2.5, is_in_stock=True)  # north out
    assert products["SYN-06"].stocks[1].stock == Stock(qty=0.0, is_in_stock=False)
    assert products["SYN-CFG"].stocks == ()  # composite: no source items, the legacy item
    ctx = BuildContext(
        now=datetime(2024, 3, 1, tzinfo=UTC),
        store_views=(("default", "base"), ("eu_en", "eu")),
        feeds=frozenset({"products", "inventoryStockStatus"}),
    )
    items = build_stock_items(syn1, ctx)
    assert [(i["stockId"], i["qty"]) for i in items] == [("1", 1.0), ("2", 6.5)]
    views = {i["storeViewCode"]: i["availability"]["qty"] for i in build_product_items(syn1, ctx)}
    assert views == {"default": 1.0, "eu_en": 6.5}  # each website's stock


def test_a_single_source_shop_keeps_the_legacy_stock_item(small: MagentoApiServer) -> None:
    products = read(rest(small))
    assert all(p.stocks == () for p in products.values())
    small.msi = False  # MSI modules disabled: /V1/inventory/... is not a route
    assert read(rest(small))["MS-OFF"].stock == Stock(qty=3.0, is_in_stock=True)


# Where a record came from, not what it says: the CSV has lines, only REST has ids.
PROVENANCE = {"line", "product_id"}


def differences(a: CatalogProduct, b: CatalogProduct) -> list[str]:
    return [
        f"{a.sku}.{f.name}: {getattr(a, f.name)!r} != {getattr(b, f.name)!r}"
        for f in fields(CatalogProduct)
        if f.name not in PROVENANCE and getattr(a, f.name) != getattr(b, f.name)
    ]


def test_csv_and_rest_give_the_same_records_of_the_featured_catalog(
    shop: MagentoApiServer, featured: tuple[Path, Path]
) -> None:
    catalog, sources = featured
    from_csv = read(
        MagentoCsvSource(str(catalog), stock_sources=str(sources), stocks=parse_stocks(STOCKS))
    )
    src = rest(shop, page_size=7, concurrency=3)
    from_rest = read(src)
    assert sorted(from_rest) == sorted(from_csv)
    assert [d for sku in from_csv for d in differences(from_csv[sku], from_rest[sku])] == []
    assert all(p.product_id is None for p in from_csv.values())
    assert all(isinstance(p.product_id, int) for p in from_rest.values())
    assert from_rest["SYN-04"].values.attributes["news_from_date"] == ("2024-03-06",)
    assert from_rest["SYN-04"].values.attributes["msrp"] == ("4.5",)
    assert src.report().complete is True
