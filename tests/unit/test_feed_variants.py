"""The variants feed: one item per configurable and child."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from catalog_sync.catalog import CatalogProduct, Variant
from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import BuildContext
from catalog_sync.feeds.variants import VARIANTS, VariantItem
from catalog_sync.feeds.variants import build_variant_items as build_dicts
from catalog_sync.sync.canonical import encode
from tests.unit.feed_check import checked_all


def build_variant_items(product: Any, ctx: BuildContext) -> list[VariantItem]:
    """The builder's dicts, checked against VariantItem and read through it."""
    return checked_all(VariantItem, build_dicts(product, ctx))


NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)
CTX = BuildContext(now=NOW, store_views=(("default", "base"), ("de", "eu")))


def configurable(*variants: Variant) -> CatalogProduct:
    return CatalogProduct(sku="MH01", product_type="configurable", variants=variants)


def test_variants_builder_one_item_per_child_with_sorted_options() -> None:
    p = configurable(
        Variant("MH01-S-Gray", (("size", "S"), ("color", "Gray"))),
        Variant("MH01-M-Gray", (("size", "M"), ("color", "Gray"))),
    )
    items = build_variant_items(p, CTX)
    assert [i.product_sku for i in items] == ["MH01-M-Gray", "MH01-S-Gray"]  # one per child
    data = items[1].model_dump(mode="json", by_alias=True)
    assert data["parentSku"] == "MH01" and data["productSku"] == "MH01-S-Gray"
    assert data["optionValues"] == [
        {"attributeCode": "color", "label": "Gray"},
        {"attributeCode": "size", "label": "S"},
    ]
    enc = encode(VARIANTS, items[1])
    assert (enc.key, enc.group) == ("MH01\x1fMH01-S-Gray", "MH01")


def test_variants_builder_hash_stable_under_reorder() -> None:
    a = configurable(
        Variant("B", (("size", "S"), ("color", "Gray"))),
        Variant("A", (("size", "M"),)),
    )
    b = configurable(
        Variant("A", (("size", "M"),)),
        Variant("B", (("color", "Gray"), ("size", "S"))),
    )
    ctx_b = BuildContext(now=datetime(2025, 1, 1, tzinfo=UTC))
    ha = [(e.key, e.hash) for e in (encode(VARIANTS, i) for i in build_variant_items(a, CTX))]
    hb = [(e.key, e.hash) for e in (encode(VARIANTS, i) for i in build_variant_items(b, ctx_b))]
    assert ha == hb


def test_variants_builder_hash_changes_with_an_option() -> None:
    [a] = build_variant_items(configurable(Variant("A", (("size", "M"),))), CTX)
    [b] = build_variant_items(configurable(Variant("A", (("size", "L"),))), CTX)
    assert encode(VARIANTS, a).key == encode(VARIANTS, b).key
    assert encode(VARIANTS, a).hash != encode(VARIANTS, b).hash


def test_variants_builder_child_listed_twice_keeps_the_last_entry() -> None:
    p = configurable(Variant("A", (("size", "M"),)), Variant("A", (("size", "L"),)))
    [item] = build_variant_items(p, CTX)
    assert [(o.attribute_code, o.label) for o in item.option_values] == [("size", "L")]


def test_variants_builder_products_without_variants_have_no_items() -> None:
    assert build_variant_items(CatalogProduct(sku="S", parent_skus=("MH01",)), CTX) == []


def test_variants_feed_is_registered() -> None:
    spec = get_feed("variants")
    assert spec is VARIANTS and not spec.aggregate
    assert spec.identity == ("parentSku", "productSku") and spec.group_field == "parentSku"
