"""The `categories` feed (aggregate): one item per category path and store view.

Identity `urlPath` + `storeViewCode`, grouped by `urlPath`. The catalog source gives
categories only as the products' paths of names (root left out), so every product
yields an item for each prefix of each of its paths, in each store view of its
websites; items of the same identity from many products are merged (`merge`).

What the CSV does not say is derived or left empty:
- `urlKey` is derived from the name as Magento derives a missing URL key: transliterated
  to ASCII, lower-cased, every run of other characters than `a-z0-9` turned into `-`,
  trimmed of `-` ("Eco/Friendly" -> "eco-friendly", "Tops & Tees" -> "tops-and-tees").
  A name with nothing left (e.g. only non-Latin letters) keeps its letters, lower-cased,
  with whitespace and `/` turned into `-`.
- `urlPath` is the parent's `urlPath` + "/" + `urlKey`; `level` counts from 1 (top).
- `position` is null (unknown); `isActive` and `includeInMenu` are true.
- No product count: it would change the item with every product edit.
A path with an empty name in it stops at the name before it.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from functools import lru_cache
from typing import Any

from catalog_sync.catalog import CatalogProduct
from catalog_sync.feeds.spec import BuildContext, FeedItem, FeedSpec
from catalog_sync.sync.canonical import canonical_bytes


class CategoryItem(FeedItem):
    url_path: str
    store_view_code: str
    name: str
    url_key: str
    parent_url_path: str | None = None
    level: int
    path_names: list[str]  # the names from the top category down to this one
    position: int | None = None
    is_active: bool = True
    include_in_menu: bool = True


_TRANSLIT = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "ø": "o",
        "Ø": "O",
        "œ": "oe",
        "Œ": "OE",
        "đ": "d",
        "Đ": "D",
        "ł": "l",
        "Ł": "L",
        "þ": "th",
        "Þ": "TH",
        "&": " and ",
        "@": " at ",
    }
)
_NOT_URL = re.compile(r"[^0-9a-z]+")
_SPACES = re.compile(r"[\s/]+")


@lru_cache(maxsize=16384)
def url_key(name: str) -> str:
    """The URL key Magento derives from a category name."""
    ascii_name = (
        unicodedata.normalize("NFKD", name.translate(_TRANSLIT))
        .encode("ascii", "ignore")
        .decode("ascii")
    )
    key = _NOT_URL.sub("-", ascii_name.lower()).strip("-")
    if key:
        return key
    return _SPACES.sub("-", name.strip().lower()).strip("-")


@lru_cache(maxsize=16384)
def url_path(names: tuple[str, ...]) -> str:
    key = url_key(names[-1])
    return key if len(names) == 1 else f"{url_path(names[:-1])}/{key}"


@lru_cache(maxsize=16384)
def _item(names: tuple[str, ...], view: str, now: datetime) -> dict[str, Any]:
    """One category item (a JSON-ready dict shaped as `CategoryItem`), made once for
    every product in the category: callers copy it (`dict(...)`)."""
    return {
        "deleted": False,
        "modifiedAt": now,
        "urlPath": url_path(names),
        "storeViewCode": view,
        "name": names[-1],
        "urlKey": url_key(names[-1]),
        "parentUrlPath": url_path(names[:-1]) if len(names) > 1 else None,
        "level": len(names),
        "pathNames": list(names),
        "position": None,
        "isActive": True,
        "includeInMenu": True,
    }


def _prefixes(paths: tuple[tuple[str, ...], ...]) -> list[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for path in paths:
        for i, name in enumerate(path):
            if not name:
                break
            out.add(path[: i + 1])
    return sorted(out)


def build_category_items(product: CatalogProduct, ctx: BuildContext) -> list[dict[str, Any]]:
    if not product.categories:
        return []
    prefixes: list[tuple[str, ...]] | None = None
    now = ctx.now
    items: list[dict[str, Any]] = []
    for view, website in ctx.store_views:
        if not product.in_website(website):
            continue
        if prefixes is None:
            prefixes = _prefixes(product.categories)
        items.extend(dict(_item(names, view, now)) for names in prefixes)
    return items


def merge_categories(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two versions of one category item. They are identical unless two names map to
    the same URL key ("Eco Friendly", "Eco-Friendly"): then the smaller canonical form
    wins, whatever the order the products came in."""
    if a == b:
        return a
    return min(a, b, key=canonical_bytes)


CATEGORIES = FeedSpec(
    name="categories",
    identity=("urlPath", "storeViewCode"),
    group_field="urlPath",
    model=CategoryItem,
    build=build_category_items,
    merge=merge_categories,
)
