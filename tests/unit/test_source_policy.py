"""The allow-list of catalog sources an event may name (issue 10, item 1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from catalog_sync.errors import ConfigError
from catalog_sync.source_policy import allowed_source

S3 = "s3://shop-exports/magento/catalog.csv"
SHOP = "https://shop.example.com"


def test_no_event_source_reads_the_configured_one() -> None:
    assert allowed_source(None, S3, None) == S3
    assert allowed_source("", SHOP, None) == SHOP


def test_no_source_at_all_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no catalog source"):
        allowed_source(None, None, None)


def test_an_event_may_name_another_export_in_the_configured_folder() -> None:
    other = "s3://shop-exports/magento/catalog-2026-12-01.csv"
    assert allowed_source(other, S3, None) == other


@pytest.mark.parametrize(
    "hostile",
    [
        "s3://other-bucket/magento/catalog.csv",
        "s3://shop-exports/other/catalog.csv",
        "s3://shop-exports/magento-evil/catalog.csv",  # a prefix of the folder name only
        "s3://shop-exports/magento/",  # no key
        "s3://shop-exports",
        "/proc/self/environ",
        "file:///proc/self/environ",
        "file:/proc/self/environ",
        "http://other/",
        "https://other.example.com/",
        "ftp://shop-exports/magento/catalog.csv",
    ],
)
def test_hostile_sources_are_refused_for_an_s3_stack(hostile: str) -> None:
    with pytest.raises(ConfigError, match="refused") as info:
        allowed_source(hostile, S3, None)
    assert hostile[:200] in str(info.value)


@pytest.mark.parametrize(
    "hostile",
    [
        "http://other/",
        "https://other.example.com",
        "https://shop.example.com.evil.net",
        "https://shop.example.com:8443",
        "http://shop.example.com",  # same host, not TLS
        "https://shop.example.com/other-store",
        "https://user@evil.net",
        "/proc/self/environ",
        "s3://other-bucket/catalog.csv",
    ],
)
def test_a_rest_stack_reads_the_configured_shop_only(hostile: str) -> None:
    with pytest.raises(ConfigError, match="configured shop only"):
        allowed_source(hostile, SHOP, "s3://anything/")
    assert allowed_source(SHOP + "/", SHOP, None) == SHOP


def test_explicit_allow_list_entries(tmp_path: Path) -> None:
    allow = "s3://archive/old/, " + str(tmp_path)
    assert allowed_source("s3://archive/old/c.csv", S3, allow) == "s3://archive/old/c.csv"
    local = tmp_path / "c.csv"
    assert allowed_source(str(local), S3, allow) == os.path.realpath(local)
    with pytest.raises(ConfigError, match="refused"):
        allowed_source("s3://archive/older/c.csv", S3, allow)


def test_local_paths_cannot_escape_their_folder(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    configured = str(exports / "catalog.csv")
    assert allowed_source(str(exports / "b.csv"), configured, None) == str(exports / "b.csv")
    with pytest.raises(ConfigError, match="refused"):
        allowed_source(str(exports / ".." / "secret.csv"), configured, None)
    link = exports / "link.csv"
    link.symlink_to("/proc/self/environ")
    with pytest.raises(ConfigError, match="refused"):
        allowed_source(str(link), configured, None)
