"""The `productAttributes` feed (aggregate): one item per attribute and store view.

Identity `attributeCode` + `storeViewCode`, grouped by `attributeCode`. The catalog
source has no attribute definitions, only the products' values (`additional_attributes`)
and the configurables' variant options, so each product yields a partial view of every
attribute it uses, in each store view of its websites, and `merge` combines them. The
merge is commutative and associative, so the result (and its hash) does not depend on
the order of the products.

What the CSV does not say is inferred or left empty:
- `label`: the configurable's variation label where there is one, else derived from the
  code (`eco_collection` -> "Eco Collection"). A real label wins over a derived one.
- `frontendInput`: `multiselect` if any product has several values; else `select` if it
  is a configurable's variant option; else `boolean` if every value is one of Yes, No,
  0, 1; else `text`. (Merged: the highest of boolean < text < select < multiselect.)
- `options`: the distinct values, sorted. A text attribute lists them too while they are
  few (a single-valued select cannot be told from a text field; and a merged item cannot
  drop values a later product might turn into options). Values longer than
  MAX_OPTION_LENGTH or spanning lines are free text and never options. An attribute with
  more than MAX_OPTIONS distinct values lists none and says `optionsOmitted: true`:
  its items stay small and do not change with every product edit.
- `isSearchable`, `isFilterable`: null (unknown).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from catalog_sync.catalog import CatalogProduct
from catalog_sync.feeds.spec import BuildContext, FeedItem, FeedSpec

FrontendInput = Literal["boolean", "text", "select", "multiselect"]

BOOLEAN_VALUES = frozenset({"Yes", "No", "0", "1"})
MAX_OPTIONS = 1000
MAX_OPTION_LENGTH = 255
INPUT_RANK: dict[str, int] = {"boolean": 0, "text": 1, "select": 2, "multiselect": 3}


class AttributeItem(FeedItem):
    attribute_code: str
    store_view_code: str
    label: str
    frontend_input: FrontendInput
    options: list[str] = []  # sorted
    options_omitted: bool = False  # more than MAX_OPTIONS distinct values
    is_searchable: bool | None = None
    is_filterable: bool | None = None


@lru_cache(maxsize=4096)
def derive_label(code: str) -> str:
    """`eco_collection` -> "Eco Collection"."""
    words = [w[:1].upper() + w[1:] for w in code.split("_") if w]
    return " ".join(words) or code


def _is_option(value: str) -> bool:
    return len(value) <= MAX_OPTION_LENGTH and "\n" not in value and "\r" not in value


def _options(values: Iterable[str]) -> tuple[tuple[str, ...], bool]:
    opts = {v for v in values if _is_option(v)}
    if len(opts) > MAX_OPTIONS:
        return (), True
    return tuple(sorted(opts)), False


# (code, label, frontendInput, options, optionsOmitted)
_Spec = tuple[str, str, str, tuple[str, ...], bool]


def _specs(
    attributes: dict[str, tuple[str, ...]],
    variant_options: dict[str, set[str]],
    labels: dict[str, str],
) -> list[_Spec]:
    out: list[_Spec] = []
    for code in sorted(attributes.keys() | variant_options.keys()):
        own = attributes.get(code, ())
        variant = variant_options.get(code)
        if len(own) > 1:
            kind = "multiselect"
        elif variant is not None:
            kind = "select"
        elif own and all(v in BOOLEAN_VALUES for v in own):
            kind = "boolean"
        else:
            kind = "text"
        options, omitted = _options(own if variant is None else variant.union(own))
        out.append((code, labels.get(code) or derive_label(code), kind, options, omitted))
    return out


@lru_cache(maxsize=16384)
def _item(spec: _Spec, view: str, now: datetime) -> dict[str, Any]:
    """One attribute item (a JSON-ready dict shaped as `AttributeItem`), made once for
    the products with the same values: callers copy it (`dict(...)`)."""
    code, label, kind, options, omitted = spec
    return {
        "deleted": False,
        "modifiedAt": now,
        "attributeCode": code,
        "storeViewCode": view,
        "label": label,
        "frontendInput": kind,
        "options": list(options),
        "optionsOmitted": omitted,
        "isSearchable": None,
        "isFilterable": None,
    }


def build_attribute_items(product: CatalogProduct, ctx: BuildContext) -> list[dict[str, Any]]:
    variant_options = product.variant_values()
    labels = product.variant_labels
    now = ctx.now
    items: list[dict[str, Any]] = []
    global_specs: list[_Spec] | None = None
    for view, website in ctx.store_views:
        if not product.in_website(website):
            continue
        if view in product.overrides:
            specs = _specs(product.values_for(view).attributes, variant_options, labels)
        else:
            if global_specs is None:
                global_specs = _specs(product.values.attributes, variant_options, labels)
            specs = global_specs
        items.extend(dict(_item(spec, view, now)) for spec in specs)
    return items


def _pick_label(code: str, a: str, b: str) -> str:
    if a == b:
        return a
    derived = derive_label(code)
    if a == derived:
        return b
    if b == derived:
        return a
    return min(a, b)


def _pick_flag(a: bool | None, b: bool | None) -> bool | None:
    if a is None:
        return b
    if b is None:
        return a
    return a or b


def merge_attributes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two versions of one attribute item: the highest input type, the union of the
    options (none past MAX_OPTIONS), a real label over a derived one."""
    if a == b:
        return a
    out = dict(a)
    ka, kb = a["frontendInput"], b["frontendInput"]
    out["frontendInput"] = ka if INPUT_RANK.get(ka, 1) >= INPUT_RANK.get(kb, 1) else kb
    out["label"] = _pick_label(a["attributeCode"], a["label"], b["label"])
    omitted = bool(a.get("optionsOmitted") or b.get("optionsOmitted"))
    options: list[str] = []
    if not omitted:
        union = set(a.get("options") or ()).union(b.get("options") or ())
        omitted = len(union) > MAX_OPTIONS
        if not omitted:
            options = sorted(union)
    out["options"] = options
    out["optionsOmitted"] = omitted
    out["isSearchable"] = _pick_flag(a.get("isSearchable"), b.get("isSearchable"))
    out["isFilterable"] = _pick_flag(a.get("isFilterable"), b.get("isFilterable"))
    return out


ATTRIBUTES = FeedSpec(
    name="productAttributes",
    identity=("attributeCode", "storeViewCode"),
    group_field="attributeCode",
    model=AttributeItem,
    build=build_attribute_items,
    merge=merge_attributes,
)
