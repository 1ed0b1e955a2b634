"""`acoCategories` (aggregate): one category per level of every path, per locale.

Identity `slug` + `source.locale`, grouped by `slug`. The sources give categories as
the products' paths of names with the root left out (roots are never sent), so every
product yields each level of each of its paths in each locale of its websites, and
items of one identity from many products are merged. The slug is the path's levels
turned into slug segments (`common.slug_segment`, see docs/aco.md); a path with a
level that has no slug is skipped here and the product is rejected by
`acoProducts` with the reason (its routes could not point at it). Every category is
active and in the menu as far as the sources say, so `families` is `["top_menu"]`
as Adobe's connector sends it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import Field

from catalog_sync.catalog import CatalogProduct
from catalog_sync.feeds.aco import CATEGORIES
from catalog_sync.feeds.aco.common import Source, Wire, category_paths, category_slug, views_of
from catalog_sync.feeds.spec import BuildContext, BuildError, FeedSpec
from catalog_sync.sync.canonical import canonical_bytes

MAX_NAME = 128


class CategoryItem(Wire):
    slug: str = Field(pattern=r"^[a-z0-9-]+(/[a-z0-9-]+)*$", min_length=1, max_length=1024)
    source: Source
    name: str = Field(min_length=1, max_length=MAX_NAME)
    families: list[str] = []


@lru_cache(maxsize=16384)
def _levels(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(slug, name) of every level of a path; () when some level has no slug."""
    out = []
    for i in range(1, len(names) + 1):
        try:
            out.append((category_slug(names[:i]), names[i - 1][:MAX_NAME]))
        except BuildError:
            return ()
    return tuple(out)


def build_category_items(product: CatalogProduct, ctx: BuildContext) -> list[dict[str, Any]]:
    if not product.categories:
        return []
    levels: set[tuple[str, str]] = set()
    for path in category_paths(product):
        levels.update(_levels(path))
    items = []
    for _view, _website, locale in views_of(product, ctx):
        for slug, name in sorted(levels):
            items.append(
                {"slug": slug, "source": {"locale": locale}, "name": name, "families": ["top_menu"]}
            )
    return items


def merge_categories(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two names with one slug ("Eco Friendly", "Eco-Friendly"): the smaller
    canonical form wins, whatever the order of the products."""
    if a == b:
        return a
    return min(a, b, key=canonical_bytes)


ACO_CATEGORIES = FeedSpec(
    name=CATEGORIES,
    identity=("slug", "source.locale"),
    group_field="slug",
    model=CategoryItem,
    build=build_category_items,
    merge=merge_categories,
    keys_only_tombstone=True,
)
