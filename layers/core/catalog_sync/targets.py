"""Targets: one engine, two SaaS services. A target is the feeds it compiles plus the
sink that speaks its wire protocol.

- `commerce-services` (the default): the feed API of Adobe's data exporter
  (`sinks/feed_api.py`), feeds `products` (+ any of the six standard feeds).
- `aco`: Adobe Commerce Optimizer's Data Ingestion API (`sinks/aco/`), feeds
  `feeds/aco/` (metadata, categories, products, price books, prices).

`SAAS_TARGET` picks one; everything else (build, hash, diff, state, snapshots, queue,
resend, status, the run options) is the same engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from catalog_sync.errors import ConfigError, RequestError
from catalog_sync.feeds.aco import ACO_FEED_NAMES
from catalog_sync.feeds.spec import AcoContext

if TYPE_CHECKING:
    from catalog_sync.settings import Settings

TARGETS = ("commerce-services", "aco")
DEFAULT_FEEDS: dict[str, tuple[str, ...]] = {
    "commerce-services": ("products",),
    "aco": ACO_FEED_NAMES,
}


def default_feeds(target: str) -> list[str]:
    return list(DEFAULT_FEEDS[target])


def target_feeds(target: str) -> frozenset[str]:
    """The feeds a target can send (its sink knows their endpoints)."""
    if target == "aco":
        return frozenset(ACO_FEED_NAMES)
    return frozenset(
        (
            "products",
            "prices",
            "variants",
            "inventoryStockStatus",
            "categories",
            "productAttributes",
        )
    )


def check_feeds(settings: Settings, feeds: list[str]) -> None:
    """A feed of one target cannot go to the other target's sink."""
    allowed = target_feeds(settings.saas_target)
    wrong = [f for f in feeds if f not in allowed and _builtin(f)]
    if wrong:
        raise RequestError(
            f"feed {', '.join(wrong)} is not a feed of SAAS_TARGET={settings.saas_target} "
            f"(its feeds: {', '.join(sorted(allowed))})"
        )


def _builtin(feed: str) -> bool:
    from catalog_sync.feeds.registry import BUILTIN_FEEDS

    return any(spec.name == feed for spec in BUILTIN_FEEDS)


def aco_context(settings: Settings) -> AcoContext | None:
    """The ACO builders' options (None for the other target)."""
    if settings.saas_target != "aco":
        return None
    views = {code for code, _ in settings.store_view_pairs()}
    locales = tuple(settings.locale_pairs())
    unknown = sorted({code for code, _ in locales} - views)
    if unknown:
        raise ConfigError(
            f"STORE_VIEW_LOCALES names store views not in STORE_VIEWS: {', '.join(unknown)}"
        )
    ctx = AcoContext(
        locales=locales,
        currencies=tuple(settings.currency_pairs()),
        media_base_url=settings.media_base_url,
    )
    seen: dict[str, str] = {}
    for view in sorted(views):
        locale = ctx.locale(view)
        if locale in seen:
            raise ConfigError(
                f"store views {seen[locale]!r} and {view!r} map to one ACO locale {locale!r}: "
                "each store view needs its own (STORE_VIEW_LOCALES)"
            )
        seen[locale] = view
    return ctx


def aco_sink(app: Any) -> Any:
    """The ACO sink (`sinks/aco`, built from the ACO_* settings by its `build_sink`)."""
    try:
        module = importlib.import_module("catalog_sync.sinks.aco")
        build = module.build_sink
    except (ImportError, AttributeError) as exc:  # until the ACO sink lands
        raise ConfigError(f"the ACO sink is not available: {exc}") from exc
    return build(app)
