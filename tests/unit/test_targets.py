"""SAAS_TARGET: settings, default feeds, feed/target checks, the ACO build options."""

from __future__ import annotations

import pytest

from catalog_sync.errors import ConfigError
from catalog_sync.feeds.aco import ACO_FEED_NAMES
from catalog_sync.settings import Settings
from catalog_sync.targets import aco_context, check_feeds

BASE = {"SNAPSHOT_BUCKET": "b", "STATE_TABLE": "t", "EXPORT_QUEUE_URL": "q"}
FEED_API = {"SAAS_BASE_URL": "https://x", "SAAS_ENVIRONMENT_ID": "e", "SAAS_API_KEY_SECRET_ID": "k"}


def test_targets_default_is_commerce_services_with_its_feed_and_checks() -> None:
    s = Settings.from_env({**BASE, **FEED_API})
    assert s.saas_target == "commerce-services" and s.feed_names() == ["products"]
    assert aco_context(s) is None
    with pytest.raises(ConfigError, match="SAAS_BASE_URL"):
        Settings.from_env({**BASE, "SAAS_API_KEY_SECRET_ID": "k"})
    with pytest.raises(ConfigError, match="not a feed of SAAS_TARGET=commerce-services"):
        check_feeds(s, ["acoProducts"])


def test_targets_aco_needs_no_feed_api_settings_and_compiles_the_aco_feeds() -> None:
    s = Settings.from_env(
        {**BASE, "SAAS_TARGET": "aco", "STORE_VIEWS": "default:base,fr:eu",
         "STORE_VIEW_LOCALES": "fr:fr-FR", "WEBSITE_CURRENCIES": "eu:EUR"}
    )  # fmt: skip
    assert s.feed_names() == list(ACO_FEED_NAMES)
    ctx = aco_context(s)
    assert ctx is not None
    assert (ctx.locale("default"), ctx.locale("fr")) == ("default", "fr-FR")
    assert (ctx.currency("eu"), ctx.currency("base")) == ("EUR", "USD")
    with pytest.raises(ConfigError, match="not a feed of SAAS_TARGET=aco"):
        check_feeds(s, ["products"])
    check_feeds(s, ["acoPrices"])  # no error


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SAAS_TARGET": "elsewhere"}, "SAAS_TARGET"),
        ({"STORE_VIEW_LOCALES": "fr"}, "STORE_VIEW_LOCALES"),
        ({"WEBSITE_CURRENCIES": "base:"}, "WEBSITE_CURRENCIES"),
    ],
)
def test_targets_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**BASE, "SAAS_TARGET": "aco", **env})


def test_targets_locales_must_name_known_store_views_and_differ() -> None:
    unknown = Settings.from_env({**BASE, "SAAS_TARGET": "aco", "STORE_VIEW_LOCALES": "xx:en"})
    with pytest.raises(ConfigError, match="not in STORE_VIEWS: xx"):
        aco_context(unknown)
    same = Settings.from_env(
        {**BASE, "SAAS_TARGET": "aco", "STORE_VIEWS": "default:base,us:base",
         "STORE_VIEW_LOCALES": "default:en-US,us:en-US"}
    )  # fmt: skip
    with pytest.raises(ConfigError, match="one ACO locale 'en-US'"):
        aco_context(same)
