"""The local ACO emulator: validation, metadata first, cascades, auth, faults, and the
`local up --target aco` stack with the sink built from the settings."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import orjson
import pytest
import requests

from catalog_sync.settings import Settings
from catalog_sync.sinks.aco import auth, wire
from devstack.aco_emulator import LOCAL_CLIENT_ID, LOCAL_CLIENT_SECRET, AcoEmulator

EN = {"locale": "en"}


@pytest.fixture
def emu() -> Iterator[AcoEmulator]:
    with AcoEmulator(max_rps=50) as e:
        yield e


def token(emu: AcoEmulator, secret: str = LOCAL_CLIENT_SECRET) -> requests.Response:
    form = {
        "client_id": LOCAL_CLIENT_ID,
        "client_secret": secret,
        "grant_type": "client_credentials",
        "scope": auth.SCOPE,
    }
    return requests.post(emu.ims_url, data=form, timeout=5)


def post(
    emu: AcoEmulator, path: str, items: list, tok: str | None = None, gz: bool = True
) -> requests.Response:
    tok = tok or token(emu).json()["access_token"]
    body = orjson.dumps(items)
    headers = {"Authorization": f"Bearer {tok}", "Content-Type": "application/json"}
    if gz:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    return requests.post(emu.base_url + path, data=body, headers=headers, timeout=5)


def meta(*codes: str) -> list[dict]:
    return [
        {"code": c, "source": EN, "label": c, "dataType": "TEXT"}
        for c in (*wire.REQUIRED_METADATA, *codes)
    ]


def test_ims_wrong_credentials_401(emu: AcoEmulator) -> None:
    assert token(emu, "nope").status_code == 401
    ok = token(emu).json()
    assert ok["expires_in"] == 86400 and ok["access_token"]


def test_auth_bodies(emu: AcoEmulator) -> None:
    r = requests.post(emu.base_url + "/v1/catalog/products", data=b"[]", timeout=5)
    assert (
        r.status_code == 403 and r.json()["error_code"] == "403010" and r.json()["status"] == "403"
    )
    r = post(emu, "/v1/catalog/products", [], tok="bogus")
    assert r.status_code == 401 and r.json()["title"] == "ErrInvalidOauthToken"


def test_validation_names_item_field_value(emu: AcoEmulator) -> None:
    items = [
        {"priceBookId": "b", "name": "B", "currency": "USD"},
        {"priceBookId": "x" * 65, "name": "X", "currency": "USD"},
    ]
    r = post(emu, "/v1/catalog/price-books", items, gz=False)
    assert r.status_code == 400
    body = r.json()
    assert body["status"] == "FAILED"
    assert body["errors"] == [
        {
            "itemIndex": 1,
            "code": "priceBookId",
            "message": "priceBookId: String should have at most 64 characters",
            "value": "x" * 65,
        }
    ]
    assert emu.state()["price-books"] == []  # the whole request rejected
    r = post(
        emu,
        "/v1/catalog/products/prices",
        [
            {
                "sku": "A",
                "priceBookId": "b",
                "regular": 10,
                "discounts": [{"code": "d", "percentage": 0}],
                "tierPrices": [{"qty": 1, "price": 9}],
            }
        ],
    )
    codes = {e["code"] for e in r.json()["errors"]}
    assert codes == {"discounts.0.percentage", "tierPrices.0.qty"}
    r = post(emu, "/v1/catalog/categories", [{"slug": "Men_Tops.html", "source": EN, "name": "M"}])
    assert r.json()["errors"][0]["code"] == "slug"


def test_metadata_first(emu: AcoEmulator) -> None:
    prod = {
        "sku": "A",
        "source": EN,
        "name": "A",
        "slug": "a",
        "status": "ENABLED",
        "attributes": [{"code": "color", "values": ["red"]}],
    }
    r = post(emu, "/v1/catalog/products", [prod])
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "source.locale"
    assert post(emu, "/v1/catalog/products/metadata", meta()).status_code == 200
    r = post(emu, "/v1/catalog/products", [prod])
    assert r.json()["errors"] == [
        {
            "itemIndex": 0,
            "code": "attributes.0.code",
            "value": "color",
            "message": "no metadata for attribute 'color' in locale 'en'",
        }
    ]
    assert post(emu, "/v1/catalog/products/metadata", meta("color")).status_code == 200
    r = post(emu, "/v1/catalog/products", [prod])
    assert r.json() == {"status": "ACCEPTED", "acceptedCount": 1}


def test_deletes_cascade(emu: AcoEmulator) -> None:
    cats = [
        {"slug": s, "source": EN, "name": s} for s in ("men", "men/tops", "men/tops/tees", "women")
    ]
    assert post(emu, "/v1/catalog/categories", cats).status_code == 200
    assert (
        post(emu, "/v1/catalog/categories/delete", [{"slug": "men/tops", "source": EN}]).status_code
        == 200
    )
    assert sorted(c["slug"] for c in emu.state()["categories"]) == ["men", "women"]
    books = [
        {"priceBookId": "base", "name": "b", "currency": "USD"},
        {"priceBookId": "g1", "name": "g", "parentId": "base"},
        {"priceBookId": "g2", "name": "g", "parentId": "g1"},
        {"priceBookId": "eur", "name": "e", "currency": "EUR"},
    ]
    assert post(emu, "/v1/catalog/price-books", books).status_code == 200
    prices = [{"sku": "A", "priceBookId": b, "regular": 1} for b in ("base", "g1", "g2", "eur")]
    assert post(emu, "/v1/catalog/products/prices", prices).status_code == 200
    assert post(emu, "/v1/catalog/price-books/delete", [{"priceBookId": "g1"}]).status_code == 200
    assert sorted(b["priceBookId"] for b in emu.state()["price-books"]) == ["base", "eur"]
    assert sorted(p["priceBookId"] for p in emu.state()["prices"]) == ["base", "eur"]
    # a delete takes keys only
    r = post(emu, "/v1/catalog/price-books/delete", [{"priceBookId": "base", "name": "b"}])
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "name"


def test_429_past_rate_and_faults(emu: AcoEmulator) -> None:
    tok = token(emu).json()["access_token"]
    emu.max_rps = 1
    statuses = [
        post(emu, "/v1/catalog/price-books/delete", [], tok=tok).status_code for _ in range(3)
    ]
    assert statuses.count(429) >= 1
    emu.max_rps = None
    assert requests.post(emu.url + "/_faults", json={"status": 503, "times": 1}, timeout=5).ok
    assert post(emu, "/v1/catalog/price-books/delete", [], tok=tok).status_code == 503
    assert post(emu, "/v1/catalog/price-books/delete", [], tok=tok).status_code == 200
    stats = requests.get(emu.url + "/_stats", timeout=5).json()
    assert stats["statuses"]["503"] == 1 and stats["maxPerSecond"] >= 1
    assert requests.get(emu.url + "/_state", timeout=5).json()["products"] == []


def test_local_aco_stack_and_factory(moto_endpoint: str) -> None:
    import boto3

    from catalog_sync.ports import OutgoingItem
    from catalog_sync.sinks.aco.factory import build_aco_sink
    from devstack.local import LocalStack

    auth.clear_cache()
    with LocalStack(aws_endpoint=moto_endpoint, target="aco") as stack:
        env = stack.env
        assert env["ACO_BASE_URL"].startswith("http://127.0.0.1:") and env["SAAS_TARGET"] == "aco"
        settings = Settings.from_env(env)
        kw = {
            "endpoint_url": moto_endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        sink = build_aco_sink(
            settings,
            secrets_client=boto3.client("secretsmanager", **kw),
            dynamodb_client=boto3.client("dynamodb", **kw),
        )
        out = sink.send("metadata", [OutgoingItem("k", "h", orjson.dumps(m)) for m in meta()])
        assert [o.status for o in out] == ["sent"] * 5
        assert len(stack.aco.state()["metadata"]) == 5


def test_settings_urls() -> None:
    base = {
        "SNAPSHOT_BUCKET": "b",
        "STATE_TABLE": "t",
        "EXPORT_QUEUE_URL": "q",
        "SAAS_BASE_URL": "http://x",
        "SAAS_ENVIRONMENT_ID": "e",
        "SAAS_API_KEY_SECRET_ID": "s",
    }
    s = Settings.from_env({**base, "ACO_TENANT_ID": "T1", "ACO_REGION": "eu1"})
    assert s.aco_url() == "https://eu1.api.commerce.adobe.com/T1"
    s = Settings.from_env({**base, "ACO_TENANT_ID": "T1", "ACO_ENVIRONMENT": "sandbox"})
    assert s.aco_url() == "https://na1-sandbox.api.commerce.adobe.com/T1"
    assert s.aco_ims_url == "https://ims-na1.adobelogin.com/ims/token/v3"
    from catalog_sync.errors import ConfigError

    with pytest.raises(ConfigError, match="ACO_REGION"):
        Settings.from_env({**base, "ACO_REGION": "mars"})
