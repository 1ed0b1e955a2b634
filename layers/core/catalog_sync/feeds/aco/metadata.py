"""`acoProductMetadata` (aggregate): one product attribute metadata per code and locale.

Identity `code` + `source.locale`, grouped by `code`. Every locale that has a product
gets the five ACO requires (`sku`, `name`, `description`, `shortDescription`,
`price`), plus one for every attribute the products carry in that locale: their
additional attributes, the configurable options and `aco_ac_attributes` (stock and
weight, as Adobe's connector carries them).

`dataType`, as Adobe's connector maps Magento's types, inferred from the values
(the source has no attribute definitions): BOOLEAN when every value is Yes or No
(the values are then sent as "true"/"false"); INTEGER or DECIMAL when every value of
a single-valued, non-option attribute is a number; TEXT otherwise (selects,
multiselects, free text). Merged over the products: equal types stay, INTEGER and
DECIMAL give DECIMAL, anything else TEXT (commutative, so the order of products
does not matter).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal

from catalog_sync.catalog import CatalogProduct
from catalog_sync.feeds.aco import METADATA
from catalog_sync.feeds.aco.common import Source, Wire, views_of
from catalog_sync.feeds.attributes import derive_label
from catalog_sync.feeds.spec import BuildContext, FeedSpec

DataType = Literal["TEXT", "DECIMAL", "INTEGER", "BOOLEAN"]
VisibleIn = Literal["PRODUCT_DETAIL", "PRODUCT_LISTING", "SEARCH_RESULTS", "PRODUCT_COMPARE"]
STOCK_ATTRIBUTE = "aco_ac_attributes"
BOOLEAN_LABELS = frozenset({"yes", "no"})
_INT = re.compile(r"^-?\d+$")
_DEC = re.compile(r"^-?\d+\.\d+$")
_ALL_PAGES: list[str] = ["PRODUCT_DETAIL", "PRODUCT_LISTING", "SEARCH_RESULTS"]


class MetadataItem(Wire):
    code: str
    source: Source
    label: str
    data_type: DataType
    visible_in: list[VisibleIn] = []
    filterable: bool = False
    sortable: bool = False
    searchable: bool = False


# (code, label, dataType, visibleIn, filterable, sortable, searchable)
_Spec = tuple[str, str, str, tuple[str, ...], bool, bool, bool]

REQUIRED: tuple[_Spec, ...] = (
    ("sku", "SKU", "TEXT", ("PRODUCT_DETAIL",), False, False, True),
    ("name", "Product Name", "TEXT", tuple(_ALL_PAGES), False, True, True),
    ("description", "Description", "TEXT", ("PRODUCT_DETAIL",), False, False, True),
    ("shortDescription", "Short Description", "TEXT", ("PRODUCT_DETAIL",), False, False, True),
    ("price", "Price", "DECIMAL", tuple(_ALL_PAGES), True, True, False),
)
STOCK: _Spec = (STOCK_ATTRIBUTE, "Stock and Weight", "TEXT", (), False, False, False)


def value_type(values: tuple[str, ...], is_option: bool) -> str:
    if values and all(v.lower() in BOOLEAN_LABELS for v in values):
        return "BOOLEAN"
    if is_option or len(values) != 1:
        return "TEXT"
    v = values[0].strip()
    if _INT.match(v):
        return "INTEGER"
    if _DEC.match(v):
        return "DECIMAL"
    return "TEXT"


def join_types(a: str, b: str) -> str:
    if a == b:
        return a
    if {a, b} == {"INTEGER", "DECIMAL"}:
        return "DECIMAL"
    return "TEXT"


def attribute_specs(product: CatalogProduct, view: str) -> list[_Spec]:
    attributes = product.values_for(view).attributes if product.overrides else None
    attrs = product.values.attributes if attributes is None else attributes
    option_codes = {c for v in product.variants for c, _ in v.options} | set(product.variant_labels)
    labels = product.variant_labels
    out: list[_Spec] = []
    for code in sorted(attrs.keys() | option_codes):
        is_option = code in option_codes
        kind = value_type(attrs.get(code, ()), is_option)
        label = labels.get(code) or derive_label(code)
        out.append((code, label, kind, ("PRODUCT_DETAIL",), is_option, False, False))
    return out


@lru_cache(maxsize=16384)
def _item(spec: _Spec, locale: str) -> dict[str, Any]:
    code, label, kind, visible, filterable, sortable, searchable = spec
    return {
        "code": code,
        "source": {"locale": locale},
        "label": label,
        "dataType": kind,
        "visibleIn": list(visible),
        "filterable": filterable,
        "sortable": sortable,
        "searchable": searchable,
    }


def build_metadata_items(product: CatalogProduct, ctx: BuildContext) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for view, _website, locale in views_of(product, ctx):
        specs = [*REQUIRED, STOCK, *attribute_specs(product, view)]
        items.extend(_copy(_item(s, locale)) for s in specs)
    return items


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "source": dict(item["source"]), "visibleIn": list(item["visibleIn"])}


def merge_metadata(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two versions of one attribute's metadata: the joined type, a real label over
    a derived one, any product's flags."""
    if a == b:
        return a
    out = dict(a)
    out["dataType"] = join_types(a["dataType"], b["dataType"])
    la, lb = a["label"], b["label"]
    derived = derive_label(a["code"])
    out["label"] = lb if la == derived else la if lb == derived else min(la, lb)
    out["visibleIn"] = sorted(set(a["visibleIn"]) | set(b["visibleIn"]))
    for flag in ("filterable", "sortable", "searchable"):
        out[flag] = bool(a[flag] or b[flag])
    return out


ACO_METADATA = FeedSpec(
    name=METADATA,
    identity=("code", "source.locale"),
    group_field="code",
    model=MetadataItem,
    build=build_metadata_items,
    merge=merge_metadata,
    keys_only_tombstone=True,
)
