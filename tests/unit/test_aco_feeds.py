"""The ACO feeds' mapping, entity by entity, on Luma-like records of our own, the
small export CSV fixture and a synthetic catalog."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from catalog_sync.feeds.aco import ACO_FEED_NAMES
from catalog_sync.feeds.aco.common import SLUG_PATTERN, category_slug, slug_segment
from catalog_sync.feeds.aco.metadata import join_types, merge_metadata
from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import BuildContext, BuildError
from catalog_sync.records import Rejected
from catalog_sync.sources.magento_csv import MagentoCsvSource
from catalog_sync.sync.canonical import canonical_bytes, content_hash, encode
from devstack import synth
from tests.unit.aco_fixtures import (
    ACO,
    CTX,
    NOW,
    bag,
    bundle_values,
    catalog,
    child,
    companion_kit,
    hoodie,
    write_bundle_catalog,
    yoga_set,
)

SMALL = Path(__file__).parent.parent / "fixtures" / "catalogs" / "small.csv"


def build(feed: str, product: Any, ctx: BuildContext = CTX) -> list[dict[str, Any]]:
    spec = get_feed(feed)
    items = list(spec.build(product, ctx))
    for item in items:  # every item is valid wire JSON for its model, nothing more
        model = spec.model.model_validate(item)
        dumped = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
        assert canonical_bytes(dumped) == canonical_bytes(item)
    return items


def by_locale(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["source"]["locale"]: i for i in items}


# -- products -----------------------------------------------------------------------------


def test_aco_products_configurable_maps_every_field() -> None:
    items = by_locale(build("acoProducts", hoodie()))
    assert sorted(items) == ["en-US", "fr-FR"]  # not in website eu: no de-DE item
    en = items["en-US"]
    assert en["sku"] == "MH01" and en["name"] == "Chaz Hoodie" and en["slug"] == "chaz-hoodie"
    assert en["description"] == "<p>Warm.</p>" and en["shortDescription"] == "A hoodie"
    assert en["status"] == "ENABLED" and en["visibleIn"] == ["CATALOG", "SEARCH"]
    assert en["metaTags"] == {
        "title": "Chaz Hoodie",
        "keywords": ["hoodie", "warm", "sweatshirt"],
        "description": "The Chaz hoodie",
    }
    stock, *attrs = en["attributes"]
    assert stock["code"] == "aco_ac_attributes"
    assert json.loads(stock["values"][0]) == {
        "inStock": True,
        "lowStock": False,  # composite types are never low on stock
        "weight": None,
        "weightType": None,
    }
    assert attrs == [
        {"code": "eco_collection", "values": ["true"]},
        {"code": "material", "values": ["Cotton", "Wool"]},
    ]
    base = "https://shop.example.com/media/catalog/product"
    assert en["images"] == [
        {
            "url": f"{base}/m/h/mh01-gray.jpg",
            "roles": ["BASE", "SMALL"],
            "customRoles": [],
            "label": "Front",
        },
        {"url": f"{base}/m/h/mh01-back.jpg", "roles": [], "customRoles": [], "label": "Back"},
    ]  # the hidden gallery image without a role is not sent
    assert en["routes"] == [
        {"path": "collections/eco-friendly"},
        {"path": "men/tops/hoodies-and-sweatshirts"},
    ]
    assert en["links"] == [
        {"type": "RELATED", "sku": "24-MB01"},
        {"type": "CROSSSELL", "sku": "24-WG085"},
        {"type": "UPSELL", "sku": "MH02"},
    ]
    assert en["configurations"] == [
        {
            "attributeCode": "color",
            "label": "Color",
            "type": "CONFIGURABLE",
            "values": [
                {"variantReferenceId": "color:Black", "label": "Black"},
                {"variantReferenceId": "color:Gray", "label": "Gray"},
            ],
        },
        {
            "attributeCode": "size",
            "label": "Size",
            "type": "CONFIGURABLE",
            "values": [
                {"variantReferenceId": "size:S", "label": "S"},
                {"variantReferenceId": "size:XS", "label": "XS"},
            ],
        },
    ]
    fr = items["fr-FR"]
    assert (fr["name"], fr["slug"]) == ("Sweat Chaz", "sweat-chaz")  # the store view's values
    assert fr["description"] == "<p>Warm.</p>"  # inherited


def test_aco_products_variants_reference_their_parent_options() -> None:
    parent = build("acoProducts", hoodie())[0]
    option_ids = {v["variantReferenceId"] for c in parent["configurations"] for v in c["values"]}
    for kid in (child("MH01-XS-Black", "XS", "Black"), child("MH01-S-Gray", "S", "Gray")):
        item = build("acoProducts", kid)[0]
        refs = {a["variantReferenceId"] for a in item["attributes"] if "variantReferenceId" in a}
        assert len(refs) == 2 and refs <= option_ids
        assert {"type": "VARIANT_OF", "sku": "MH01"} in item["links"]
        assert item["visibleIn"] == []
        stock = json.loads(item["attributes"][0]["values"][0])
        assert stock == {"inStock": True, "lowStock": False, "weight": 1.0, "weightType": "fixed"}


def test_aco_products_configurable_without_children_is_disabled() -> None:
    p = dataclasses.replace(hoodie(), variants=(), variant_labels={})
    assert {i["status"] for i in build("acoProducts", p)} == {"DISABLED"}


def test_aco_products_grouped_links_its_products_and_low_stock_is_carried() -> None:
    assert build("acoProducts", yoga_set())[0]["links"] == [
        {"type": "GROUPED", "sku": "24-WG085"},
        {"type": "GROUPED", "sku": "24-WG086"},
    ]
    items = by_locale(build("acoProducts", bag()))
    assert sorted(items) == ["de-DE", "en-US", "fr-FR"]
    stock = json.loads(items["de-DE"]["attributes"][0]["values"][0])
    assert stock == {"inStock": True, "lowStock": True, "weight": 2.5, "weightType": "fixed"}
    assert items["en-US"]["attributes"][1:] == [
        {"code": "activity", "values": ["Gym", "Travel"]},
        {"code": "strap_count", "values": ["2"]},
    ]


def test_aco_products_bundle_groups_its_options_and_items_link_in_bundle() -> None:
    from catalog_sync.sinks.aco import wire

    kit = by_locale(build("acoProducts", companion_kit()))["en-US"]
    assert kit["bundles"] == [
        {
            "group": "Sprite Stasis Ball",
            "required": True,
            "multiSelect": False,
            "items": [
                {"sku": "24-WG081-blue", "qty": 1.0, "userDefinedQty": False},
                {"sku": "24-WG082-pink", "qty": 1.0, "userDefinedQty": False},
            ],
            "defaultItemSkus": ["24-WG081-blue"],
        },
        {
            "group": "Sprite Yoga Strap",
            "required": False,
            "multiSelect": True,
            "items": [{"sku": "24-WG085", "qty": 1.0, "userDefinedQty": True}],
            "defaultItemSkus": ["24-WG085"],
        },
    ]
    assert kit["externalIds"] == [{"id": "2046", "origin": "AdobeCommerce"}]
    wire.Product.model_validate(kit)  # what ACO accepts
    ball = dataclasses.replace(bag(), sku="24-WG081-blue", bundle_parents=("24-WG080-KIT",))
    links = by_locale(build("acoProducts", ball))["en-US"]["links"]
    assert {"type": "IN_BUNDLE", "sku": "24-WG080-KIT"} in links
    plain = by_locale(build("acoProducts", bag()))["en-US"]
    assert "bundles" not in plain and "externalIds" not in plain  # the CSV has no ids


def test_aco_products_bundle_from_the_export_csv(tmp_path: Path) -> None:
    """`bundle_values` on the bundle's row: its options; the selections link to it."""
    path = tmp_path / "catalog.csv"
    write_bundle_catalog(path)
    records = {r.sku: r for r in MagentoCsvSource(str(path)).read() if not isinstance(r, Rejected)}
    item = by_locale(build("acoProducts", records["KIT-1"]))["en-US"]
    assert [(b["group"], b["required"], b["multiSelect"]) for b in item["bundles"]] == [
        ("Bag", True, False),
        ("Extras", False, True),
    ]
    assert item["bundles"][0]["items"] == [
        {"sku": "24-MB01", "qty": 1.0, "userDefinedQty": False},
        {"sku": "24-MB04", "qty": 1.0, "userDefinedQty": True},
    ]
    assert item["bundles"][0]["defaultItemSkus"] == ["24-MB01"]
    for sku in ("24-MB01", "24-MB04", "24-WG085"):
        links = by_locale(build("acoProducts", records[sku]))["en-US"]["links"]
        assert {"type": "IN_BUNDLE", "sku": "KIT-1"} in links, sku
    write_bundle_catalog(path, "name=Bag,type=radio,required=1,price=0.0000")  # no sku
    bad = next(r for r in MagentoCsvSource(str(path)).read() if r.sku == "KIT-1")
    assert isinstance(bad, Rejected) and bad.issues[0].field == "bundle_values"
    assert "selection 1 needs name= and sku=" in bad.issues[0].message


def test_aco_products_locale_defaults_to_the_store_view_code() -> None:
    ctx = dataclasses.replace(CTX, aco=None)
    assert sorted(by_locale(build("acoProducts", bag(), ctx))) == ["de", "default", "fr"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"url_key": None}, "url_key"),
        ({"name": None}, "name"),
    ],
)
def test_aco_products_unmappable_product_is_rejected_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(BuildError) as err:
        get_feed("acoProducts").build(bag(**change), CTX)
    assert err.value.field == field


def test_aco_products_category_without_slug_rejects_the_product() -> None:
    p = dataclasses.replace(bag(), categories=(("Gear", "Сумки"),))
    with pytest.raises(BuildError) as err:
        get_feed("acoProducts").build(p, CTX)
    assert err.value.field == "categories" and "Сумки" in str(err.value)
    # the categories feed sends the levels it can, and skips the path without a slug
    assert build("acoCategories", p) == []


def test_aco_product_tombstone_is_the_delete_keys_only() -> None:
    spec = get_feed("acoProducts")
    key = encode(spec, build("acoProducts", bag())[0]).key
    stone = spec.tombstone(key, NOW)
    assert stone == {"sku": "24-MB01", "source": {"locale": "en-US"}}
    enc = encode(spec, stone)
    assert enc.key == key and enc.group == "24-MB01"
    assert enc.body == orjson.dumps(stone, option=orjson.OPT_SORT_KEYS)
    assert get_feed("acoPrices").tombstone("A\x1fbase", NOW) == {"sku": "A", "priceBookId": "base"}
    assert get_feed("acoPriceBooks").tombstone("eu", NOW) == {"priceBookId": "eu"}
    assert get_feed("acoCategories").tombstone("men\x1fen-US", NOW) == {
        "slug": "men",
        "source": {"locale": "en-US"},
    }
    assert get_feed("acoProductMetadata").tombstone("name\x1fen-US", NOW) == {
        "code": "name",
        "source": {"locale": "en-US"},
    }


def test_aco_items_are_the_wire_json_and_the_hash_is_of_it() -> None:
    for name in ACO_FEED_NAMES:
        spec = get_feed(name)
        for product in catalog():
            for item in build(name, product):
                enc = encode(spec, item)
                assert orjson.loads(enc.body) == item
                assert "deleted" not in item and "modifiedAt" not in item
                assert enc.hash == content_hash(enc.body)


# -- categories and slugs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Hoodies & Sweatshirts", "hoodies-and-sweatshirts"),
        ("Men_Tops.html", "men-tops"),
        ("Été  Crème", "ete-creme"),
        ("Größe", "grosse"),
        ("--Sale!!--", "sale"),
        ("Yoga 2.0", "yoga-2-0"),
        ("Сумки", ""),
    ],
)
def test_aco_slug_rule(text: str, slug: str) -> None:
    assert slug_segment(text) == slug


def test_aco_category_slug_is_valid_or_rejected() -> None:
    assert category_slug(("Men", "Tops_New", "Tees.HTML")) == "men/tops-new/tees"
    assert SLUG_PATTERN.match(category_slug(("Men", "Tops_New", "Tees.HTML")))
    with pytest.raises(BuildError, match="no letter a-z or digit"):
        category_slug(("Men", "!!!"))


def test_aco_categories_each_level_per_locale_roots_skipped() -> None:
    items = build("acoCategories", hoodie())
    assert {(i["slug"], i["source"]["locale"]) for i in items} == {
        (slug, locale)
        for slug in (
            "men",
            "men/tops",
            "men/tops/hoodies-and-sweatshirts",
            "collections",
            "collections/eco-friendly",
        )
        for locale in ("en-US", "fr-FR")
    }
    top = next(i for i in items if i["slug"] == "men/tops/hoodies-and-sweatshirts")
    assert top["name"] == "Hoodies & Sweatshirts" and top["families"] == ["top_menu"]


# -- metadata -----------------------------------------------------------------------------


def test_aco_metadata_required_attributes_and_every_attribute_products_carry() -> None:
    items = build("acoProductMetadata", bag())
    codes = {(i["code"], i["source"]["locale"]) for i in items}
    for locale in ("en-US", "fr-FR", "de-DE"):
        for code in (
            "sku",
            "name",
            "description",
            "shortDescription",
            "price",
            "aco_ac_attributes",
            "activity",
            "strap_count",
        ):
            assert (code, locale) in codes
    types = {i["code"]: i["dataType"] for i in items}
    assert types["price"] == "DECIMAL" and types["strap_count"] == "INTEGER"
    assert types["activity"] == "TEXT"
    hood = {i["code"]: i for i in build("acoProductMetadata", hoodie())}
    assert hood["eco_collection"]["dataType"] == "BOOLEAN"
    assert hood["color"]["label"] == "Color" and hood["color"]["filterable"] is True
    for product in catalog():  # every attribute a product carries has metadata
        carried = {
            (a["code"], i["source"]["locale"])
            for i in build("acoProducts", product)
            for a in i["attributes"]
        }
        meta = {(i["code"], i["source"]["locale"]) for i in build("acoProductMetadata", product)}
        assert carried <= meta


def test_aco_metadata_merge_is_order_independent() -> None:
    assert join_types("INTEGER", "DECIMAL") == "DECIMAL"
    assert join_types("BOOLEAN", "INTEGER") == "TEXT"
    a = {
        "code": "size",
        "source": {"locale": "x"},
        "label": "Size",
        "dataType": "INTEGER",
        "visibleIn": ["PRODUCT_DETAIL"],
        "filterable": False,
        "sortable": False,
        "searchable": False,
    }
    b = {**a, "dataType": "TEXT", "filterable": True, "label": "Size (cm)"}
    c = {**a, "dataType": "DECIMAL"}
    assert merge_metadata(merge_metadata(a, b), c) == merge_metadata(c, merge_metadata(b, a))
    assert merge_metadata(a, b)["dataType"] == "TEXT"


# -- price books and prices ---------------------------------------------------------------


def test_aco_price_books_base_per_website_and_child_per_customer_group() -> None:
    items = {i["priceBookId"]: i for i in build("acoPriceBooks", bag())}
    wholesale = hashlib.sha1(b"Wholesale").hexdigest()
    assert items == {
        "base": {"priceBookId": "base", "name": "base", "currency": "USD"},
        "eu": {"priceBookId": "eu", "name": "eu", "currency": "EUR"},
        f"base::{wholesale}": {
            "priceBookId": f"base::{wholesale}",
            "name": "base Wholesale",
            "parentId": "base",
        },
        f"eu::{wholesale}": {
            "priceBookId": f"eu::{wholesale}",
            "name": "eu Wholesale",
            "parentId": "eu",
        },
    }


def test_aco_prices_regular_special_discount_and_tiers() -> None:
    items = {i["priceBookId"]: i for i in build("acoPrices", bag())}
    wholesale = "base::" + hashlib.sha1(b"Wholesale").hexdigest()
    assert items["base"] == {
        "sku": "24-MB01",
        "priceBookId": "base",
        "regular": 34.0,
        "discounts": [{"code": "special_price", "price": 4.0}],
        "tierPrices": [{"qty": 5.0, "price": 31.0}],
    }
    assert items[wholesale] == {
        "sku": "24-MB01",
        "priceBookId": wholesale,
        "regular": 34.0,
        "discounts": [
            {"code": "special_price", "price": 4.0},
            {"code": "tier_qty_1", "price": 1.0},
        ],
        "tierPrices": [{"qty": 5.0, "price": 31.0}, {"qty": 10.0, "price": 25.0}],
    }


def test_aco_prices_special_price_only_while_its_window_is_open() -> None:
    after = dataclasses.replace(CTX, now=datetime(2025, 7, 1, 0, 0, 1, tzinfo=UTC))
    before = dataclasses.replace(CTX, now=datetime(2025, 4, 30, tzinfo=UTC))
    for ctx in (after, before):
        assert all(
            i["discounts"] == []
            for i in build("acoPrices", bag(), ctx)
            if i["priceBookId"] in ("base", "eu")
        )
    last_day = dataclasses.replace(CTX, now=datetime(2025, 6, 30, 23, 0, tzinfo=UTC))
    assert build("acoPrices", bag(), last_day)[0]["discounts"] != []


def test_aco_prices_none_for_a_configurable_parent_which_is_reported() -> None:
    p = dataclasses.replace(hoodie(), values=dataclasses.replace(hoodie().values, price=52.0))
    with pytest.raises(BuildError) as err:
        get_feed("acoPrices").build(p, CTX)
    assert err.value.field == "price" and err.value.severity == "warning"
    assert build("acoPrices", hoodie()) == []  # no price given: nothing to report
    assert build("acoPrices", bag(price=None, special_price=None)) == []


# -- on real files ------------------------------------------------------------------------


def _all_items(path: Path, views: tuple[tuple[str, str], ...]) -> dict[str, int]:
    ctx = BuildContext(now=NOW, store_views=views, aco=ACO)
    counts = dict.fromkeys(ACO_FEED_NAMES, 0)
    for record in MagentoCsvSource(str(path), store_views=[v for v, _ in views]).read():
        if isinstance(record, Rejected):
            continue
        for name in ACO_FEED_NAMES:
            try:
                counts[name] += len(build(name, record, ctx))
            except BuildError as exc:
                assert exc.field in ("price", "url_key", "name", "categories")
    return counts


def test_aco_feeds_on_the_small_export_csv() -> None:
    counts = _all_items(SMALL, (("default", "base"), ("fr", "base")))
    assert all(n > 0 for n in counts.values()), counts


def test_aco_feeds_on_a_synthetic_catalog(tmp_path: Path) -> None:
    generated = tmp_path / "generated.csv"
    synth.generate(generated, 120, seed=3, store_views=("fr", "de"))
    simples = [
        r.sku
        for r in MagentoCsvSource(str(generated)).read()
        if not isinstance(r, Rejected) and r.product_type == "simple" and not r.parent_skus
    ][:3]
    path = tmp_path / "catalog.csv"  # and a bundle of three of its simples
    write_bundle_catalog(path, bundle_values(simples), base=generated)
    counts = _all_items(path, (("default", "base"), ("fr", "base"), ("de", "base")))
    assert counts["acoProducts"] > 120 and all(n > 0 for n in counts.values()), counts
    records = {r.sku: r for r in MagentoCsvSource(str(path)).read() if not isinstance(r, Rejected)}
    kit = by_locale(build("acoProducts", records["KIT-1"]))["en-US"]
    assert [i["sku"] for i in kit["bundles"][0]["items"]] == simples
    for sku in simples:
        links = by_locale(build("acoProducts", records[sku]))["en-US"]["links"]
        assert {"type": "IN_BUNDLE", "sku": "KIT-1"} in links
