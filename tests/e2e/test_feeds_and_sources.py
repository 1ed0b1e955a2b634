"""Every feed, both sources, scopes: the export CSV read directly and the same
catalog served by the local Magento REST API give the same items in every feed."""

from __future__ import annotations

import csv
import shutil
import uuid
from pathlib import Path

import requests

from devstack.magento_server import MagentoApiServer
from tests.e2e.conftest import FIXTURES
from tests.fixtures.featured import STOCKS, featured_server, write_featured

SMALL = FIXTURES / "catalogs" / "small.csv"
ALL_FEEDS = "products,prices,variants,inventoryStockStatus,categories,productAttributes"
VIEWS = "default:base,fr:base,eu_en:eu"
TOKEN = "magento-token-0123456789"


def _all_held(s) -> dict[str, list[dict]]:
    env = s.env["SAAS_ENVIRONMENT_ID"]
    return {
        feed: sorted(
            (
                {k: v for k, v in item.items() if k != "modifiedAt"}
                for item in s.receiver.state(feed, env)
            ),
            key=repr,
        )
        for feed in ALL_FEEDS.split(",")
    }


def test_e2e_csv_and_rest_sources_give_the_same_items_in_every_feed(make_stack, tmp_path: Path):
    via_csv = make_stack(SMALL, FEEDS=ALL_FEEDS, STORE_VIEWS=VIEWS)
    via_csv.sync()

    with MagentoApiServer(SMALL, token=TOKEN, store_views=("default", "fr", "eu_en")) as shop:
        via_rest = make_stack(
            None, FEEDS=ALL_FEEDS, STORE_VIEWS=VIEWS, CATALOG_SOURCE=shop.url,
            MAGENTO_TOKEN_SECRET_ID="magento-token",
        )  # fmt: skip
        via_rest.runner.app.client("secretsmanager").create_secret(
            Name="magento-token", SecretString=TOKEN
        )
        result = via_rest.sync()
        assert {r["feed"] for r in result["runs"]} == set(ALL_FEEDS.split(","))
        assert all(r["counts"]["rejected"] == 0 for r in result["runs"])

    csv_items, rest_items = _all_held(via_csv), _all_held(via_rest)
    for feed in ALL_FEEDS.split(","):
        assert csv_items[feed], feed
        assert rest_items[feed] == csv_items[feed], feed


def test_e2e_price_change_sends_prices_items_only(make_stack, tmp_path: Path):
    catalog = tmp_path / "catalog.csv"
    shutil.copy(SMALL, catalog)
    s = make_stack(catalog, FEEDS=ALL_FEEDS, STORE_VIEWS=VIEWS)
    s.sync()
    held = s.receiver.stats()["feeds"]
    before = {f: held[f]["items"]["accepted"] for f in held}

    catalog.write_text(catalog.read_text().replace(",17,", ",19,", 1))  # 24-WG086's price
    result = s.sync()

    after = s.receiver.stats()["feeds"]
    sent = {f: after[f]["items"]["accepted"] - before.get(f, 0) for f in after}
    # one price item: the all-groups item of the one website the product is in
    assert sent["prices"] == 1
    assert sent["products"] == 0
    assert sum(sent.values()) == 1
    changed = {r["feed"]: r["counts"]["changed"] for r in result["runs"]}
    assert changed["prices"] == 1 and changed["products"] == 0


def test_e2e_product_leaving_a_website_is_deleted_in_that_scope_only(make_stack, tmp_path: Path):
    catalog = tmp_path / "catalog.csv"
    shutil.copy(SMALL, catalog)
    s = make_stack(catalog, STORE_VIEWS=VIEWS)
    s.sync()
    assert ("24-MB01", "eu_en") in s.held() and ("24-MB01", "default") in s.held()
    accepted = s.receiver.stats()["items"]["accepted"]

    catalog.write_text(
        catalog.read_text().replace(",base,eu,", ",base,", 1).replace('"base,eu"', "base", 1)
    )
    result = s.sync()

    assert result["runs"][0]["counts"]["deleted"] == 1
    assert s.receiver.stats()["items"]["accepted"] - accepted == 1
    assert ("24-MB01", "eu_en") not in s.held()
    assert ("24-MB01", "default") in s.held() and ("24-MB01", "fr") in s.held()


def test_e2e_resync_by_product_ids_through_the_rest_source(make_stack):
    secret = f"magento-token-{uuid.uuid4().hex[:8]}"  # secrets are per moto server
    with MagentoApiServer(SMALL, token=TOKEN, store_views=("default", "fr", "eu_en")) as shop:
        s = make_stack(
            None,
            STORE_VIEWS=VIEWS,
            CATALOG_SOURCE=shop.url,
            MAGENTO_TOKEN_SECRET_ID=secret,
        )
        s.runner.app.client("secretsmanager").create_secret(Name=secret, SecretString=TOKEN)
        s.sync()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        ids = {
            sku: requests.get(f"{shop.url}/rest/all/V1/products/{sku}", headers=headers).json()[
                "id"
            ]
            for sku in ("24-MB01", "24-WG086")
        }
        accepted = s.receiver.stats()["items"]["accepted"]

        result = s.resync(
            byIds=[str(ids["24-MB01"]), str(ids["24-WG086"]), "999999"], idType="productId"
        )

        run = result["runs"][0]
        in_views = len([k for k in s.held() if k[0] in ids])
        assert run["counts"]["requeued"] == in_views > 2
        assert run["counts"]["deleted"] == 0
        assert s.receiver.stats()["items"]["accepted"] - accepted == in_views
        [note] = [i for i in run["issues"] if i["field"] == "productId"]
        assert "product id 999999 is not in Magento" in note["message"]

        # refusals: the handler's answer, not a function error
        refused = s.resync(byIds=["abc"], idType="productId")
        assert refused["status"] == "refused" and "'abc' is not a product id" in refused["reason"]
        refused = s.resync(byIds=["999998"], idType="productId")
        assert refused["status"] == "refused" and "no product with id 999998" in refused["reason"]


def test_e2e_product_ids_need_the_rest_source(make_stack):
    s = make_stack(SMALL, STORE_VIEWS=VIEWS)
    refused = s.resync(byIds=["1"], idType="productId")
    assert refused["status"] == "refused"
    assert "export CSV carries no product ids" in refused["reason"]


def test_e2e_rows_of_unconfigured_store_views_are_not_built(make_stack, tmp_path: Path):
    rows = list(csv.reader(SMALL.open(newline="", encoding="utf-8")))
    col = {name: i for i, name in enumerate(rows[0])}
    row = next(r for r in rows[1:] if r[col["sku"]] == "24-MB01" and not r[col["store_view_code"]])
    other = list(row)
    other[col["store_view_code"]] = "xx"
    other[col["price"]] = "not-a-price"
    catalog = tmp_path / "catalog.csv"
    with catalog.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([*rows, other])
    s = make_stack(catalog, STORE_VIEWS=VIEWS)

    run = s.sync()["runs"][0]

    assert run["counts"]["rejected"] == 0
    assert ("24-MB01", "default") in s.held()
    assert any("store view 'xx' ignored" in i["message"] for i in run["issues"])


def test_e2e_csv_and_rest_agree_on_a_featured_multi_source_catalog(make_stack, tmp_path: Path):
    """Configurable and dynamic bundle without a price, 25 attribute sets under the web
    API input limits, decimal and date text attributes, a NULL quantity, an inactive
    store view, and MSI (two stocks): the same items in every feed from both sources
    (the export CSV with its Stock Sources file beside it)."""
    catalog, sources = write_featured(tmp_path)
    views = "default:base,fr:base,eu_en:eu"
    via_csv = make_stack(catalog, FEEDS=ALL_FEEDS, STORE_VIEWS=views, INVENTORY_STOCKS=STOCKS)
    via_csv.sync()
    secret = f"magento-token-{uuid.uuid4().hex[:8]}"
    with featured_server(catalog, sources, TOKEN) as shop:
        via_rest = make_stack(
            None, FEEDS=ALL_FEEDS, STORE_VIEWS=views, CATALOG_SOURCE=shop.url,
            MAGENTO_TOKEN_SECRET_ID=secret,
        )  # fmt: skip
        via_rest.runner.app.client("secretsmanager").create_secret(Name=secret, SecretString=TOKEN)
        result = via_rest.sync()
        assert all(r["counts"]["rejected"] == 0 for r in result["runs"])

    csv_items, rest_items = _all_held(via_csv), _all_held(via_rest)
    for feed in ALL_FEEDS.split(","):
        assert csv_items[feed], feed
        assert rest_items[feed] == csv_items[feed], feed
    stock = {(i["sku"], i["stockId"]) for i in rest_items["inventoryStockStatus"]}
    assert {("SYN-01", "1"), ("SYN-01", "2"), ("SYN-CFG", "1")} <= stock
    assert not any(i["sku"] in ("SYN-CFG", "SYN-BDL") for i in rest_items["prices"])
