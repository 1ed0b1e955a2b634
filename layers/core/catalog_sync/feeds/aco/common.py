"""What the ACO feeds share: locales, slugs, the wire models' base."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache

from catalog_sync.catalog import CatalogProduct
from catalog_sync.feeds.spec import AcoContext, BuildContext, BuildError, WireModel

SLUG_PATTERN = re.compile(r"^[a-z0-9-]+(/[a-z0-9-]+)*$")
MAX_SLUG = 1024
_DEFAULT = AcoContext()


class Wire(WireModel):
    """Base of the ACO item models: camelCase JSON, nothing else allowed."""


class Source(Wire):
    locale: str


def options(ctx: BuildContext) -> AcoContext:
    return ctx.aco or _DEFAULT


def views_of(product: CatalogProduct, ctx: BuildContext) -> Iterator[tuple[str, str, str]]:
    """(store view, website, locale) for each configured store view whose website
    has the product."""
    aco = options(ctx)
    for view, website in ctx.store_views:
        if product.in_website(website):
            yield view, website, aco.locale(view)


_TRANSLIT = str.maketrans(
    {"ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "đ": "d", "ł": "l", "þ": "th", "&": " and "}
)
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=16384)
def slug_segment(text: str) -> str:
    """One level of a slug: the rule of docs/aco.md. Lower-cased, transliterated to
    ASCII (accents dropped, ß -> ss, & -> and), a `.html`/`.htm` suffix dropped, every
    run of other characters than a-z and 0-9 (`_`, spaces, dots, ...) turned into one
    `-`, `-` trimmed. Empty when nothing is left (e.g. only non-Latin letters)."""
    low = text.strip().lower()
    for suffix in (".html", ".htm"):
        if low.endswith(suffix):
            low = low[: -len(suffix)]
    ascii_text = (
        unicodedata.normalize("NFKD", low.translate(_TRANSLIT))
        .encode("ascii", "ignore")
        .decode("ascii")
    )
    return _NOT_SLUG.sub("-", ascii_text).strip("-")


@lru_cache(maxsize=16384)
def category_slug(names: tuple[str, ...]) -> str:
    """The slug of a category path of names (root left out): its levels' segments
    joined by `/`. Raises BuildError naming the level that has no slug."""
    parts = []
    for name in names:
        seg = slug_segment(name)
        if not seg:
            raise BuildError(
                "categories",
                f"category {'/'.join(names)!r}: {name!r} has no letter a-z or digit to make "
                "a slug from (ACO slugs match ^[a-z0-9-]+(/[a-z0-9-]+)*$)",
            )
        parts.append(seg)
    slug = "/".join(parts)
    if len(slug) > MAX_SLUG:
        raise BuildError("categories", f"category slug {slug[:60]!r}... is over {MAX_SLUG} chars")
    return slug


def category_paths(product: CatalogProduct) -> list[tuple[str, ...]]:
    """The product's category paths, cut at an empty name, roots left out (the
    sources already drop the root name), deduplicated and sorted."""
    out: set[tuple[str, ...]] = set()
    for path in product.categories:
        cut: list[str] = []
        for name in path:
            if not name:
                break
            cut.append(name)
        if cut:
            out.add(tuple(cut))
    return sorted(out)
