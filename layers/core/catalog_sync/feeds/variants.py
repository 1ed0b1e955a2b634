"""The `variants` feed: one item per configurable product and child.

Identity `parentSku` + `productSku`, grouped by `parentSku`: the items come from the
configurable's own record (its `variants`), so a child listed twice keeps the last
entry, as the products feed does. Option values are sorted by attribute code.
Variants are global in Magento: no store view or website in the identity.
"""

from __future__ import annotations

from typing import Any

from catalog_sync.catalog import CatalogProduct
from catalog_sync.feeds.spec import BuildContext, FeedItem, FeedSpec, WireModel


class VariantOptionValue(WireModel):
    attribute_code: str
    label: str


class VariantItem(FeedItem):
    parent_sku: str
    product_sku: str
    option_values: list[VariantOptionValue] = []  # sorted by attributeCode


def build_variant_items(product: CatalogProduct, ctx: BuildContext) -> list[dict[str, Any]]:
    """The configurable's variant items, as JSON-ready dicts shaped as `VariantItem`."""
    if not product.variants:
        return []
    by_child: dict[str, list[dict[str, str]]] = {}
    for v in product.variants:
        by_child[v.sku] = [
            {"attributeCode": code, "label": label} for code, label in sorted(v.options)
        ]
    now = ctx.now
    parent = product.sku
    return [
        {
            "deleted": False,
            "modifiedAt": now,
            "parentSku": parent,
            "productSku": child,
            "optionValues": by_child[child],
        }
        for child in sorted(by_child)
    ]


VARIANTS = FeedSpec(
    name="variants",
    identity=("parentSku", "productSku"),
    group_field="parentSku",
    model=VariantItem,
    build=build_variant_items,
)
