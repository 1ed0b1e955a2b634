"""The productAttributes feed: attributes inferred from the products, merged across them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from catalog_sync.catalog import CatalogProduct, StoreValues, Variant
from catalog_sync.feeds import attributes as attrs_mod
from catalog_sync.feeds.attributes import (
    ATTRIBUTES,
    AttributeItem,
    derive_label,
    merge_attributes,
)
from catalog_sync.feeds.attributes import (
    build_attribute_items as build_dicts,
)
from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import BuildContext, FeedItem
from catalog_sync.sync.canonical import encode, item_json
from tests.unit.feed_check import checked_all


def build_attribute_items(product: Any, ctx: BuildContext) -> list[AttributeItem]:
    """The builder's dicts, checked against AttributeItem and read through it."""
    return checked_all(AttributeItem, build_dicts(product, ctx))


NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)
VIEWS = (("default", "base"), ("fr", "base"), ("de", "eu"))
CTX = BuildContext(now=NOW, store_views=VIEWS)


def simple(sku: str, **attributes: tuple[str, ...]) -> CatalogProduct:
    return CatalogProduct(sku=sku, websites=("base",), values=StoreValues(attributes=attributes))


def merged(items: Iterable[FeedItem | dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What an aggregate run keeps: one merged item per identity."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        data = item_json(item)
        key = ATTRIBUTES.key_of(data)
        out[key] = data if key not in out else merge_attributes(out[key], data)
    return out


def default_view(items: Iterable[AttributeItem]) -> dict[str, AttributeItem]:
    return {i.attribute_code: i for i in items if i.store_view_code == "default"}


def test_attributes_derive_label_from_the_code() -> None:
    assert derive_label("climate") == "Climate"
    assert derive_label("eco_collection") == "Eco Collection"
    assert derive_label("_x__y_") == "X Y"


def test_attributes_builder_one_item_per_attribute_and_store_view() -> None:
    p = simple("A", climate=("Cool", "All-Weather"), eco_collection=("No",), pattern=("Solid",))
    items = build_attribute_items(p, CTX)
    assert sorted((i.store_view_code, i.attribute_code) for i in items) == [
        (view, code)
        for view in ("default", "fr")
        for code in ("climate", "eco_collection", "pattern")
    ]
    got = default_view(items)
    assert got["climate"].model_dump(mode="json", by_alias=True) == {
        "attributeCode": "climate",
        "storeViewCode": "default",
        "label": "Climate",
        "frontendInput": "multiselect",
        "options": ["All-Weather", "Cool"],
        "optionsOmitted": False,
        "isSearchable": None,
        "isFilterable": None,
        "deleted": False,
        "modifiedAt": "2024-03-15T12:00:00Z",
    }
    assert (got["eco_collection"].label, got["eco_collection"].frontend_input) == (
        "Eco Collection",
        "boolean",
    )
    assert got["pattern"].frontend_input == "text"
    enc = encode(ATTRIBUTES, got["climate"])
    assert (enc.key, enc.group) == ("climate\x1fdefault", "climate")


def test_attributes_builder_variant_options_are_selects_with_their_labels() -> None:
    parent = CatalogProduct(
        sku="MH01",
        product_type="configurable",
        variants=(
            Variant("MH01-S", (("size", "S"), ("color", "Gray"))),
            Variant("MH01-M", (("size", "M"), ("color", "Blue"))),
        ),
        variant_labels={"size": "Size", "color": "Colour"},
    )
    got = default_view(build_attribute_items(parent, CTX))
    assert (got["color"].label, got["color"].frontend_input) == ("Colour", "select")
    assert got["color"].options == ["Blue", "Gray"]
    assert got["size"].options == ["M", "S"]


def test_attributes_builder_store_view_values() -> None:
    p = CatalogProduct(
        sku="A",
        values=StoreValues(attributes={"color": ("Gray",)}),
        overrides={"fr": StoreValues(attributes={"color": ("Gris", "Noir")})},
    )
    items = {(i.store_view_code, i.attribute_code): i for i in build_attribute_items(p, CTX)}
    assert items[("default", "color")].options == ["Gray"]
    assert items[("fr", "color")].options == ["Gris", "Noir"]
    assert items[("fr", "color")].frontend_input == "multiselect"
    assert items[("de", "color")].options == ["Gray"]


def test_attributes_merge_unions_options_and_takes_the_highest_input() -> None:
    parent = CatalogProduct(
        sku="MH01",
        websites=("base",),
        variants=(Variant("MH01-S", (("color", "Gray"),)),),
        variant_labels={"color": "Colour"},
    )
    products = [
        simple("A", color=("Red",), activity=("Gym",), new=("Yes",)),
        simple("B", activity=("Hiking", "Yoga"), new=("0",), note=("hand wash",)),
        parent,
        simple("C", new=("No",), note=("Maybe",)),
    ]
    got = merged(i for p in products for i in build_attribute_items(p, CTX))
    color = got["color\x1fdefault"]
    assert (color["frontendInput"], color["label"]) == ("select", "Colour")  # real label wins
    assert color["options"] == ["Gray", "Red"]
    activity = got["activity\x1fdefault"]
    assert activity["frontendInput"] == "multiselect"
    assert activity["options"] == ["Gym", "Hiking", "Yoga"]  # single values kept
    assert got["new\x1fdefault"]["frontendInput"] == "boolean"
    assert got["new\x1fdefault"]["options"] == ["0", "No", "Yes"]
    assert got["note\x1fdefault"]["frontendInput"] == "text"


def test_attributes_free_text_and_too_many_values_are_not_options(monkeypatch: Any) -> None:
    long_text = "A long story. " * 30
    [item] = build_attribute_items(
        simple("A", care=(long_text,)), BuildContext(now=NOW, store_views=(("default", "base"),))
    )
    assert (item.frontend_input, item.options) == ("text", [])
    monkeypatch.setattr(attrs_mod, "MAX_OPTIONS", 3)
    ctx = BuildContext(now=NOW, store_views=(("default", "base"),))
    products = [simple(str(n), mpn=(f"X{n}",)) for n in range(5)]
    got = merged(i for p in products for i in build_attribute_items(p, ctx))
    assert got["mpn\x1fdefault"]["options"] == []
    assert got["mpn\x1fdefault"]["optionsOmitted"] is True
    few = merged(i for p in products[:3] for i in build_attribute_items(p, ctx))
    assert few["mpn\x1fdefault"]["options"] == ["X0", "X1", "X2"]
    assert few["mpn\x1fdefault"]["optionsOmitted"] is False


_VALUES = st.sampled_from(["Yes", "No", "1", "Red", "Blue", "Gym", "x" * 300])
_PRODUCTS = st.lists(
    st.tuples(
        st.lists(_VALUES, min_size=1, max_size=3, unique=True),  # own values of `attr`
        st.booleans(),  # a configurable using `attr` as a variant option
        st.sampled_from([None, "Attr", "Other Label"]),
    ),
    min_size=1,
    max_size=6,
)


def _catalog(spec: list[tuple[list[str], bool, str | None]]) -> list[CatalogProduct]:
    out = []
    for n, (values, is_variant, label) in enumerate(spec):
        if is_variant:
            out.append(
                CatalogProduct(
                    sku=f"P{n}",
                    variants=tuple(Variant(f"P{n}-{v}", (("attr", v),)) for v in values),
                    variant_labels={"attr": label} if label else {},
                )
            )
        else:
            out.append(
                CatalogProduct(sku=f"S{n}", values=StoreValues(attributes={"attr": tuple(values)}))
            )
    return out


@settings(max_examples=200, deadline=None)
@given(spec=_PRODUCTS, order=st.randoms(use_true_random=False))
def test_attributes_merge_is_order_independent(
    spec: list[tuple[list[str], bool, str | None]], order: Any
) -> None:
    monkey_max = attrs_mod.MAX_OPTIONS
    attrs_mod.MAX_OPTIONS = 4  # small, so the "too many options" path is exercised
    try:
        ctx = BuildContext(now=NOW)
        items = [item_json(i) for p in _catalog(spec) for i in build_attribute_items(p, ctx)]
        shuffled = list(items)
        order.shuffle(shuffled)
        # a different association too: fold the shuffled list from the right
        right: dict[str, Any] | None = None
        for data in reversed(shuffled):
            right = data if right is None else merge_attributes(data, right)
        left = merged(items)
        assert right is not None and len(left) == 1
        [value] = left.values()
        assert encode(ATTRIBUTES, value).hash == encode(ATTRIBUTES, right).hash
    finally:
        attrs_mod.MAX_OPTIONS = monkey_max


def test_attributes_builder_hash_stable_under_reorder() -> None:
    a = simple("A", climate=("Cool", "Warm"), color=("Red",))
    b = CatalogProduct(
        sku="A",
        websites=("base",),
        values=StoreValues(attributes={"color": ("Red",), "climate": ("Warm", "Cool")}),
    )
    ha = {e.key: e.hash for e in (encode(ATTRIBUTES, i) for i in build_attribute_items(a, CTX))}
    ctx_b = BuildContext(now=datetime(2025, 1, 1, tzinfo=UTC), store_views=VIEWS)
    hb = {e.key: e.hash for e in (encode(ATTRIBUTES, i) for i in build_attribute_items(b, ctx_b))}
    assert ha == hb and len(ha) == 4


def test_attributes_feed_is_registered_as_aggregate() -> None:
    spec = get_feed("productAttributes")
    assert spec is ATTRIBUTES and spec.aggregate
    assert spec.identity == ("attributeCode", "storeViewCode")
    assert spec.group_field == "attributeCode"
