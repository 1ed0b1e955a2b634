"""REST JSON parts to catalog values: numbers, timestamps, the category tree, stock
items, gallery, links, and the store-view difference (helpers of `mapper`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from catalog_sync.catalog import (
    SCALAR_VALUES,
    GalleryImage,
    GroupedLink,
    Links,
    Stock,
    StoreValues,
)

TS_FORMAT = "%Y-%m-%d %H:%M:%S"


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(str(value)[:19], TS_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a number: {value!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"not a finite number: {value!r}")
    return f


def _dynamic_bundle(item: dict[str, Any]) -> bool:
    """A bundle whose price comes from its selections (`price_type` 0, the default)."""
    for ca in item.get("custom_attributes") or ():
        if ca.get("attribute_code") == "price_type":
            return str(ca.get("value")) != "1"
    return True


def _walk(node: dict[str, Any], path: tuple[str, ...], out: dict[int, tuple[str, ...]]) -> None:
    """Category ids -> name paths; levels 0 (Root Catalog) and 1 (store roots) left out."""
    level = int(node.get("level") or 0)
    here = (*path, str(node.get("name"))) if level >= 2 else ()
    out[int(node["id"])] = here
    for child in node.get("children_data") or ():
        _walk(child, here, out)


def _stock(s: dict[str, Any]) -> Stock:
    manage = None if s.get("use_config_manage_stock", True) else bool(s.get("manage_stock"))
    notify = None
    if not s.get("use_config_notify_stock_qty", True) and s.get("notify_stock_qty") is not None:
        notify = _number(s["notify_stock_qty"])
    return Stock(
        qty=_number(s.get("qty") or 0),  # NULL (never set): 0, as the export's empty cell
        is_in_stock=bool(s.get("is_in_stock")),
        manage_stock=manage,
        notify_qty=notify,
    )


def _gallery(entries: Sequence[dict[str, Any]]) -> tuple[GalleryImage, ...]:
    return tuple(
        GalleryImage(
            str(e["file"]),
            e.get("label") or None,
            int(e.get("position") or 0),
            bool(e.get("disabled")),
        )
        for e in entries
        if e.get("file") and e.get("media_type", "image") == "image"
    )


def _links(links: Sequence[dict[str, Any]]) -> Links:
    by_type: dict[str, list[tuple[int, str]]] = {}
    for link in links:
        by_type.setdefault(str(link.get("link_type")), []).append(
            (int(link.get("position") or 0), str(link.get("linked_product_sku")))
        )

    def skus(kind: str) -> tuple[str, ...]:
        return tuple(s for _, s in sorted(by_type.get(kind, []), key=lambda p: p[0]))

    return Links(related=skus("related"), crosssell=skus("crosssell"), upsell=skus("upsell"))


def _grouped(links: Sequence[dict[str, Any]]) -> tuple[GroupedLink, ...]:
    out = []
    for link in sorted(
        (lk for lk in links if lk.get("link_type") == "associated"),
        key=lambda lk: int(lk.get("position") or 0),
    ):
        qty = (link.get("extension_attributes") or {}).get("qty")
        out.append(
            GroupedLink(
                str(link.get("linked_product_sku")), _number(qty) if qty is not None else None
            )
        )
    return tuple(out)


def _diff(base: StoreValues, view: StoreValues) -> StoreValues | None:
    """The view's values that differ from global, as sparse overrides (None: no difference)."""
    kw: dict[str, Any] = {}
    cleared = set()
    for name in SCALAR_VALUES:
        g, v = getattr(base, name), getattr(view, name)
        if v == g:
            continue
        if v is None:
            cleared.add(name)
        else:
            kw[name] = v
    images = _dict_diff(base.images, view.images, "")
    labels = _dict_diff(base.image_labels, view.image_labels, "")
    attributes = _dict_diff(base.attributes, view.attributes, ())
    if not (kw or cleared or images or labels or attributes):
        return None
    return StoreValues(
        images=images,
        image_labels=labels,
        attributes=attributes,
        cleared=frozenset(cleared),
        **kw,
    )


def _dict_diff(base: dict[str, Any], view: dict[str, Any], empty: Any) -> dict[str, Any]:
    out = {k: v for k, v in view.items() if base.get(k) != v}
    out.update({k: empty for k in base if k not in view})
    return out
