"""The categories feed: one item per category path and store view, merged across products."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from catalog_sync.catalog import CatalogProduct
from catalog_sync.feeds.categories import (
    CATEGORIES,
    CategoryItem,
    merge_categories,
    url_key,
)
from catalog_sync.feeds.categories import (
    build_category_items as build_dicts,
)
from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import BuildContext, FeedItem
from catalog_sync.sync.canonical import encode, item_json
from tests.unit.feed_check import checked_all


def build_category_items(product: Any, ctx: BuildContext) -> list[CategoryItem]:
    """The builder's dicts, checked against CategoryItem and read through it."""
    return checked_all(CategoryItem, build_dicts(product, ctx))


NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)
VIEWS = (("default", "base"), ("fr", "base"), ("de", "eu"))
CTX = BuildContext(now=NOW, store_views=VIEWS)


def merged(items: Iterable[FeedItem]) -> dict[str, dict[str, Any]]:
    """What an aggregate run keeps: one merged item per identity."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        data = item_json(item)
        key = CATEGORIES.key_of(data)
        out[key] = data if key not in out else merge_categories(out[key], data)
    return out


def hashes(items: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {k: encode(CATEGORIES, v).hash for k, v in items.items()}


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Men", "men"),
        ("Tops & Tees", "tops-and-tees"),
        ("Eco/Friendly", "eco-friendly"),
        ("  Bags -- Sale! ", "bags-sale"),
        ("Café Crème", "cafe-creme"),
        ("Straße", "strasse"),
        ("Neu 2024", "neu-2024"),
        ("Ящик", "ящик"),  # nothing Latin: the name itself, lower-cased
    ],
)
def test_categories_url_key_derived_from_the_name(name: str, key: str) -> None:
    assert url_key(name) == key


def test_categories_builder_one_item_per_path_prefix_and_store_view() -> None:
    p = CatalogProduct(
        sku="MH01",
        websites=("base",),
        categories=(("Men", "Tops", "Hoodies & Sweatshirts"), ("Men", "Tops"), ("Eco/Friendly",)),
    )
    items = build_category_items(p, CTX)
    keys = sorted((i.store_view_code, i.url_path) for i in items)
    paths = ["eco-friendly", "men", "men/tops", "men/tops/hoodies-and-sweatshirts"]
    assert keys == [("default", u) for u in paths] + [("fr", u) for u in paths]
    leaf = next(i for i in items if i.url_path.endswith("sweatshirts"))
    assert leaf.model_dump(mode="json", by_alias=True) == {
        "urlPath": "men/tops/hoodies-and-sweatshirts",
        "storeViewCode": "default",
        "name": "Hoodies & Sweatshirts",
        "urlKey": "hoodies-and-sweatshirts",
        "parentUrlPath": "men/tops",
        "level": 3,
        "pathNames": ["Men", "Tops", "Hoodies & Sweatshirts"],
        "position": None,
        "isActive": True,
        "includeInMenu": True,
        "deleted": False,
        "modifiedAt": "2024-03-15T12:00:00Z",
    }
    top = next(i for i in items if i.url_path == "eco-friendly")
    assert (top.name, top.parent_url_path, top.level) == ("Eco/Friendly", None, 1)
    enc = encode(CATEGORIES, leaf)
    assert enc.key == "men/tops/hoodies-and-sweatshirts\x1fdefault"
    assert enc.group == "men/tops/hoodies-and-sweatshirts"


def test_categories_builder_no_categories_or_no_website_no_items() -> None:
    assert build_category_items(CatalogProduct(sku="A"), CTX) == []
    p = CatalogProduct(sku="A", websites=(), categories=(("Men",),))
    assert build_category_items(p, CTX) == []


def test_categories_builder_path_stops_at_an_empty_name() -> None:
    p = CatalogProduct(sku="A", websites=("eu",), categories=(("Men", "", "Tops"),))
    assert [i.url_path for i in build_category_items(p, CTX)] == ["men"]


def test_categories_merge_across_products_is_order_independent() -> None:
    products = [
        CatalogProduct(sku="A", categories=(("Men", "Tops"),)),
        CatalogProduct(sku="B", categories=(("Men", "Bottoms"), ("Men", "Tops"))),
        CatalogProduct(sku="C", websites=("eu",), categories=(("Gear",),)),
        CatalogProduct(sku="D", categories=(("Eco Friendly",), ("Eco-Friendly",))),
    ]
    forward = merged(i for p in products for i in build_category_items(p, CTX))
    ctx2 = BuildContext(now=datetime(2025, 1, 1, tzinfo=UTC), store_views=VIEWS)
    backward = merged(i for p in reversed(products) for i in build_category_items(p, ctx2))
    assert hashes(forward) == hashes(backward)
    assert len(forward) == 3 * 4 + 1  # men, men/tops, men/bottoms, eco-friendly; gear in de
    # two names with the same URL key: the same winner whatever the order
    eco = "eco-friendly\x1fdefault"
    assert forward[eco]["name"] == backward[eco]["name"] == "Eco Friendly"


def test_categories_merge_of_identical_items_keeps_it() -> None:
    [a] = build_category_items(CatalogProduct(sku="A", categories=(("Men",),)), BuildContext(NOW))
    [b] = build_category_items(CatalogProduct(sku="B", categories=(("Men",),)), BuildContext(NOW))
    da, db = item_json(a), item_json(b)
    assert merge_categories(da, db) == da == db


def test_categories_builder_items_are_valid_models() -> None:
    p = CatalogProduct(sku="A", categories=(("Men", "Tops"),))
    items = build_category_items(p, CTX)
    assert all(isinstance(i, CategoryItem) for i in items)
    assert sorted((i.store_view_code, i.url_path) for i in items) == [
        (v, u) for v in ("de", "default", "fr") for u in ("men", "men/tops")
    ]


def test_categories_feed_is_registered_as_aggregate() -> None:
    spec = get_feed("categories")
    assert spec is CATEGORIES and spec.aggregate
    assert spec.identity == ("urlPath", "storeViewCode") and spec.group_field == "urlPath"
