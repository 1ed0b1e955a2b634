"""The products feed builder: store-view overlay, prices by date, variants and
parents, and a canonical hash that ignores row and list order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from catalog_sync.catalog import (
    CatalogProduct,
    GalleryImage,
    GroupedLink,
    Links,
    Stock,
    StoreValues,
    Variant,
)
from catalog_sync.feeds.products import PRODUCTS, ProductItem
from catalog_sync.feeds.products import build_product_items as build_dicts
from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import BuildContext
from catalog_sync.sync.canonical import encode
from tests.unit.feed_check import checked_all


def build_product_items(product: Any, ctx: BuildContext) -> list[ProductItem]:
    """The builder's dicts, checked against ProductItem and read through it."""
    return checked_all(ProductItem, build_dicts(product, ctx))


NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)
VIEWS = (("default", "base"), ("fr", "base"), ("de", "eu"))
CTX = BuildContext(now=NOW, store_views=VIEWS)


def product(**kw: object) -> CatalogProduct:
    base: dict[str, object] = dict(
        sku="MH01",
        websites=("base",),
        values=StoreValues(
            name="Chaz Hoodie",
            price=52.0,
            visibility="Catalog, Search",
            enabled=True,
            images={"base": "/m/h/main.jpg", "thumbnail": "/m/h/main.jpg", "small": "/m/h/alt.jpg"},
            image_labels={"base": "Front"},
            attributes={"material": ("Polyester", "Cotton"), "color": ("Gray",)},
        ),
        overrides={"fr": StoreValues(name="Sweat Chaz", attributes={"color": ("Gris",)})},
        categories=(("Men", "Tops"), ("Collections", "Eco/Friendly")),
        stock=Stock(qty=0.0, is_in_stock=True, manage_stock=None),
        gallery=(
            GalleryImage("/m/h/main.jpg", None, 1),
            GalleryImage("/m/h/alt.jpg", "Side", 2),
            GalleryImage("/m/h/back.jpg", "Back", 3, hidden=True),
        ),
        product_type="configurable",
        variants=(
            Variant("MH01-S-Gray", (("size", "S"), ("color", "Gray"))),
            Variant("MH01-M-Gray", (("size", "M"), ("color", "Gray"))),
        ),
        variant_labels={"color": "Color", "size": "Size"},
        links=Links(related=("B", "A"), upsell=("C",)),
    )
    base.update(kw)
    return CatalogProduct(**base)  # type: ignore[arg-type]


def items_by_view(p: CatalogProduct, ctx: BuildContext = CTX) -> dict[str, ProductItem]:
    return {i.store_view_code: i for i in build_product_items(p, ctx)}


def test_products_builder_one_item_per_store_view_of_the_products_websites() -> None:
    items = items_by_view(product())
    assert sorted(items) == ["default", "fr"]  # de is on website eu
    assert items["fr"].website_code == "base"
    assert all(i.modified_at == NOW and i.deleted is False for i in items.values())
    assert sorted(items_by_view(product(websites=None))) == ["de", "default", "fr"]
    assert items_by_view(product(websites=())) == {}


def test_products_builder_overlays_store_view_values() -> None:
    items = items_by_view(product())
    assert items["default"].name == "Chaz Hoodie"
    assert items["fr"].name == "Sweat Chaz"
    assert items["fr"].price is not None and items["fr"].price.regular == 52.0  # inherited
    fr_attrs = {a.code: a.values for a in items["fr"].attributes}
    assert fr_attrs == {"color": ["Gris"], "material": ["Cotton", "Polyester"]}


def test_products_builder_cleared_value_in_store_view() -> None:
    p = product(overrides={"fr": StoreValues(cleared=frozenset({"name"}))})
    assert items_by_view(p)["fr"].name is None


def test_products_builder_json_shape_is_camel_case() -> None:
    data = items_by_view(product())["default"].model_dump(mode="json", by_alias=True)
    assert data["storeViewCode"] == "default"
    assert data["categories"] == ["Collections/Eco\\/Friendly", "Men/Tops"]
    assert data["images"] == [
        {
            "url": "/m/h/main.jpg",
            "label": "Front",
            "roles": ["base", "thumbnail"],
            "position": 1,
            "hidden": False,
        },
        {
            "url": "/m/h/alt.jpg",
            "label": "Side",
            "roles": ["small"],
            "position": 2,
            "hidden": False,
        },
        {"url": "/m/h/back.jpg", "label": "Back", "roles": [], "position": 3, "hidden": True},
    ]
    assert data["availability"] == {"inStock": True, "qty": 0.0, "manageStock": None}
    assert data["variants"] == [
        {
            "sku": "MH01-M-Gray",
            "options": [{"code": "color", "label": "Gray"}, {"code": "size", "label": "M"}],
        },
        {
            "sku": "MH01-S-Gray",
            "options": [{"code": "color", "label": "Gray"}, {"code": "size", "label": "S"}],
        },
    ]
    assert data["configurableAttributes"] == [
        {"code": "color", "label": "Color"},
        {"code": "size", "label": "Size"},
    ]
    assert data["links"] == {"related": ["A", "B"], "crosssell": [], "upsell": ["C"]}
    assert data["enabled"] is True and data["type"] == "configurable"


@pytest.mark.parametrize(
    ("start", "end", "active"),
    [
        (None, None, True),
        (datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 31, tzinfo=UTC), True),
        (datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 15, tzinfo=UTC), True),  # whole day
        (datetime(2024, 3, 16, tzinfo=UTC), None, False),
        (None, datetime(2024, 3, 14, tzinfo=UTC), False),
        (None, datetime(2024, 3, 15, 11, 59, tzinfo=UTC), False),
    ],
)
def test_products_builder_special_price_only_when_active(
    start: datetime | None, end: datetime | None, active: bool
) -> None:
    values = StoreValues(price=52.0, special_price=40.0, special_from=start, special_to=end)
    [item] = build_product_items(CatalogProduct(sku="A", values=values), BuildContext(now=NOW))
    assert item.price is not None
    assert item.price.regular == 52.0
    assert item.price.special == (40.0 if active else None)
    assert item.price.final == (40.0 if active else 52.0)
    assert item.price.special_from == start and item.price.special_to == end


def test_products_builder_leaves_prices_to_the_prices_feed() -> None:
    values = StoreValues(name="A", price=52.0, special_price=40.0)
    p = CatalogProduct(sku="A", values=values)
    alone = BuildContext(now=NOW)
    both = BuildContext(now=NOW, feeds=frozenset({"products", "prices"}))
    [with_price] = build_product_items(p, alone)
    [without] = build_product_items(p, both)
    assert with_price.price is not None and with_price.price.final == 40.0
    assert without.price is None
    assert b'"price":null' in encode(PRODUCTS, without).body
    # a price edit changes the products item only when it carries the price
    edited = CatalogProduct(sku="A", values=StoreValues(name="A", price=60.0, special_price=40.0))
    [edited_alone] = build_product_items(edited, alone)
    [edited_both] = build_product_items(edited, both)
    assert encode(PRODUCTS, edited_alone).hash != encode(PRODUCTS, with_price).hash
    assert encode(PRODUCTS, edited_both).hash == encode(PRODUCTS, without).hash


def test_products_builder_children_carry_parents_and_grouped_links() -> None:
    child = CatalogProduct(sku="MH01-S-Gray", parent_skus=("MH02", "MH01", "MH01"))
    [item] = build_product_items(child, BuildContext(now=NOW))
    assert item.parent_skus == ["MH01", "MH02"]
    grouped = CatalogProduct(
        sku="KIT", product_type="grouped", grouped=(GroupedLink("B", 2.0), GroupedLink("A", None))
    )
    [kit] = build_product_items(grouped, BuildContext(now=NOW))
    assert [(g.sku, g.qty) for g in kit.grouped_products] == [("A", None), ("B", 2.0)]


def test_products_builder_hash_stable_under_list_reorder() -> None:
    a = product()
    b = product(
        values=StoreValues(
            name="Chaz Hoodie",
            price=52.0,
            visibility="Catalog, Search",
            enabled=True,
            images={"small": "/m/h/alt.jpg", "thumbnail": "/m/h/main.jpg", "base": "/m/h/main.jpg"},
            image_labels={"base": "Front"},
            attributes={"color": ("Gray",), "material": ("Cotton", "Polyester")},
        ),
        categories=(("Collections", "Eco/Friendly"), ("Men", "Tops")),
        variants=tuple(reversed(a.variants)),
        links=Links(related=("A", "B"), upsell=("C",)),
    )
    for view in ("default", "fr"):
        ea = encode(PRODUCTS, items_by_view(a)[view])
        eb = encode(PRODUCTS, items_by_view(b)[view])
        assert (ea.key, ea.hash) == (eb.key, eb.hash)


def test_products_builder_hash_ignores_modified_at_and_normalises_numbers() -> None:
    a = CatalogProduct(sku="A", values=StoreValues(price=52.0), stock=Stock(qty=5.0))
    b = CatalogProduct(sku="A", values=StoreValues(price=52), stock=Stock(qty=5))
    [ia] = build_product_items(a, BuildContext(now=NOW))
    [ib] = build_product_items(b, BuildContext(now=datetime(2025, 1, 1, tzinfo=UTC)))
    assert encode(PRODUCTS, ia).hash == encode(PRODUCTS, ib).hash
    assert b'"regular":52.0' in encode(PRODUCTS, ib).body


def test_products_builder_hash_changes_when_content_changes() -> None:
    [a] = build_product_items(
        CatalogProduct(sku="A", values=StoreValues(name="x")), BuildContext(now=NOW)
    )
    [b] = build_product_items(
        CatalogProduct(sku="A", values=StoreValues(name="y")), BuildContext(now=NOW)
    )
    assert encode(PRODUCTS, a).hash != encode(PRODUCTS, b).hash
    assert encode(PRODUCTS, a).key == "A\x1fdefault"


def test_products_builder_validates_items() -> None:
    # A badly typed value never becomes an item: the builder (float()) or the model
    # check raises, and the reindex rejects the record.
    with pytest.raises((ValidationError, ValueError)):
        build_product_items(CatalogProduct(sku="A", values=StoreValues(price="abc")), CTX)  # type: ignore[arg-type]


def test_products_feed_is_registered() -> None:
    spec = get_feed("products")
    assert spec is PRODUCTS
    assert spec.identity == ("sku", "storeViewCode") and spec.group_field == "sku"


def test_products_builder_hash_stable_under_csv_row_reorder(tmp_path: Path) -> None:
    from catalog_sync.sources.magento_csv import MagentoCsvSource

    rows = [
        ',A,Alpha,10.0000,"color=Blue,material=Cotton|Wool","Default Category/Men,Default Category/Gear"',
        "fr,A,Alpha FR,,,",
        ",B,Beta,20,material=Wool,",
        ",C,Gamma,30,,",
    ]
    header = "store_view_code,sku,name,price,additional_attributes,categories\n"
    reordered = [
        rows[3],
        rows[1],
        ',A,Alpha,10,"material=Wool|Cotton,color=Blue","Default Category/Gear,Default Category/Men"',
        rows[2],
    ]
    hashes = []
    for n, order in enumerate((rows, reordered)):
        path = tmp_path / f"{n}.csv"
        path.write_text(header + "\n".join(order) + "\n", encoding="utf-8")
        ctx = BuildContext(now=NOW, store_views=(("default", "base"), ("fr", "base")))
        got = {}
        for p in MagentoCsvSource(str(path)).read():
            assert isinstance(p, CatalogProduct)
            for item in build_product_items(p, ctx):
                enc = encode(PRODUCTS, item)
                got[enc.key] = enc.hash
        hashes.append(got)
    assert len(hashes[0]) == 6
    assert hashes[0] == hashes[1]
