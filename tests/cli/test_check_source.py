"""`catalogctl check-source`: every missing permission and the bearer setting in one message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalogctl.cli import cli
from devstack.magento_server import MagentoApiServer
from devstack.magento_server.inventory import ALL_RESOURCES

SMALL = Path(__file__).parent.parent / "fixtures" / "catalogs" / "small.csv"
TOKEN = "check-token"


@pytest.fixture
def shop() -> Iterator[MagentoApiServer]:
    with MagentoApiServer(SMALL, token=TOKEN) as server:
        yield server


def check(shop: MagentoApiServer, token: str = TOKEN) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["check-source", shop.url], env={"MAGENTO_TOKEN": token})
    return result.exit_code, result.output


def test_check_source_passes_with_every_permission(shop: MagentoApiServer) -> None:
    code, out = check(shop)
    assert code == 0, out
    assert "the REST source can read this shop" in out
    assert "missing" not in out


def test_check_source_lists_every_missing_permission_in_one_message(
    shop: MagentoApiServer,
) -> None:
    shop.acl = ALL_RESOURCES - {
        "Magento_Catalog::categories",
        "Magento_Catalog::sets",
        "Magento_Customer::group",
        "Magento_InventoryApi::stock",
    }
    code, out = check(shop)
    assert code == 1
    assert "NOT READY" in out
    assert "Magento_Catalog::categories, Magento_Catalog::sets (attribute sets, categories)" in out
    assert "Magento_Customer::group (customer groups: tier prices use the default" in out
    assert "Magento_InventoryApi::stock (inventory stocks, inventory stock-source links" in out
    assert "Resource Access" in out
    assert TOKEN not in out


def test_check_source_names_the_bearer_setting_when_every_call_is_refused(
    shop: MagentoApiServer,
) -> None:
    shop.bearer_integration = False  # 2.4.4+, "Allow OAuth Access Tokens ..." = No
    code, out = check(shop)
    assert code == 1
    assert "refused the token on every endpoint" in out
    assert "oauth/consumer/enable_integration_as_bearer" in out


def test_check_source_says_msi_is_absent_when_its_modules_are_off(shop: MagentoApiServer) -> None:
    shop.msi = False
    code, out = check(shop)
    assert code == 0
    assert "not installed (404; fine): inventory sources" in out
