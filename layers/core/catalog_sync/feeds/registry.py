"""The feeds, listed: one module per feed, named here once.

`get_feed` and `all_feeds` answer from this list; `register` adds a feed at run
time (the tests' toy feed). Feed modules import only `feeds.spec`, so nothing
here imports in a circle.
"""

from __future__ import annotations

from catalog_sync.feeds.aco.categories import ACO_CATEGORIES
from catalog_sync.feeds.aco.metadata import ACO_METADATA
from catalog_sync.feeds.aco.price_books import ACO_PRICE_BOOKS
from catalog_sync.feeds.aco.prices import ACO_PRICES
from catalog_sync.feeds.aco.products import ACO_PRODUCTS
from catalog_sync.feeds.attributes import ATTRIBUTES
from catalog_sync.feeds.categories import CATEGORIES
from catalog_sync.feeds.inventory import INVENTORY
from catalog_sync.feeds.prices import PRICES
from catalog_sync.feeds.products import PRODUCTS
from catalog_sync.feeds.spec import FeedSpec
from catalog_sync.feeds.variants import VARIANTS

BUILTIN_FEEDS: tuple[FeedSpec, ...] = (
    PRODUCTS,
    PRICES,
    VARIANTS,
    INVENTORY,
    CATEGORIES,
    ATTRIBUTES,
    # the ACO target's feeds (feeds/aco/), in the order ACO wants them
    ACO_METADATA,
    ACO_CATEGORIES,
    ACO_PRODUCTS,
    ACO_PRICE_BOOKS,
    ACO_PRICES,
)

_REGISTRY: dict[str, FeedSpec] = {spec.name: spec for spec in BUILTIN_FEEDS}


def register(spec: FeedSpec) -> FeedSpec:
    """Add a feed (tests, extensions); a built-in feed's name cannot be taken."""
    if any(b.name == spec.name and b is not spec for b in BUILTIN_FEEDS):
        raise ValueError(f"feed {spec.name!r} is built in")
    _REGISTRY[spec.name] = spec
    return spec


def get_feed(name: str) -> FeedSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown feed {name!r} (known feeds: {known})") from None


def all_feeds() -> list[str]:
    return sorted(_REGISTRY)
