"""The local Magento REST API server: shapes, searchCriteria, auth, faults, reloads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.magento_server import MagentoApiServer, parse_query

SMALL = Path(__file__).parent.parent / "fixtures" / "catalogs" / "small.csv"
TOKEN = "t-123"
T0 = datetime(2024, 3, 1, 10, 0, 0, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server() -> Iterator[MagentoApiServer]:
    with MagentoApiServer(SMALL, token=TOKEN, clock=lambda: T0) as srv:
        yield srv


def get(server: MagentoApiServer, path: str, params: Any = None, status: int = 200) -> Any:
    resp = requests.get(server.url + path, params=params, headers=AUTH, timeout=10)
    assert resp.status_code == status, resp.text
    return resp.json()


def sc(*filters: tuple[str, str, str], group_each: bool = False, **extra: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for i, (field, cond, value) in enumerate(filters):
        g, f = (i, 0) if group_each else (0, i)
        base = f"searchCriteria[filter_groups][{g}][filters][{f}]"
        params[f"{base}[field]"] = field
        params[f"{base}[value]"] = value
        params[f"{base}[condition_type]"] = cond
    for k, v in extra.items():
        params[f"searchCriteria[{k}]"] = v
    return params or {"searchCriteria": ""}


def skus(body: dict[str, Any]) -> list[str]:
    return [it["sku"] for it in body["items"]]


def test_magento_server_requires_the_bearer_token(server: MagentoApiServer) -> None:
    resp = requests.get(server.url + "/rest/all/V1/products?searchCriteria", timeout=10)
    assert resp.status_code == 401
    assert "isn't authorized" in resp.json()["message"]
    wrong = {"Authorization": "Bearer nope"}
    assert (
        requests.get(server.url + "/rest/V1/categories", headers=wrong, timeout=10).status_code
        == 401
    )


def test_magento_server_lists_products_in_magento_shape(server: MagentoApiServer) -> None:
    body = get(server, "/rest/all/V1/products", sc(pageSize="5", currentPage="1"))
    assert body["total_count"] == 12
    assert skus(body) == ["MH01-XS-Black", "MH01-XS-Gray", "MH01-S-Black", "MH01-S-Gray", "MH01"]
    parent = body["items"][4]
    assert parent["id"] == 5
    assert parent["type_id"] == "configurable"
    assert parent["status"] == 1 and parent["visibility"] == 4
    assert parent["updated_at"] == "2024-03-01 10:00:00"
    assert parent["extension_attributes"]["configurable_product_links"] == [1, 2, 3, 4]
    assert "stock_item" not in parent["extension_attributes"]  # as magento2#36533
    custom = {c["attribute_code"]: c["value"] for c in parent["custom_attributes"]}
    material = get(server, "/rest/all/V1/products/attributes/material")
    assert material["frontend_input"] == "multiselect"
    labels = {o["value"]: o["label"] for o in material["options"]}
    assert [labels[v] for v in custom["material"].split(",")] == ["Cotton", "Polyester"]
    assert body["search_criteria"]["page_size"] == 5


def test_magento_server_requires_search_criteria(server: MagentoApiServer) -> None:
    body = get(server, "/rest/all/V1/products", status=400)
    assert "required" in body["message"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ((("sku", "eq", "mh01"),), ["MH01"]),
        ((("sku", "in", "24-MB01,24-MB04,nope"),), ["24-MB01", "24-MB04"]),
        ((("sku", "like", "24-WG08%"),), ["24-WG085", "24-WG086", "24-WG080"]),
        ((("type_id", "eq", "configurable"), ("type_id", "eq", "grouped")), ["MH01", "24-WG080"]),
        ((("entity_id", "gt", "10"),), ["240-LV04", "MS-OFF"]),
        (
            (("price", "gteq", "34"),),
            ["MH01-XS-Black", "MH01-XS-Gray", "MH01-S-Black", "MH01-S-Gray", "MH01", "24-MB01"],
        ),
    ],
)
def test_magento_server_filters_with_conditions(
    server: MagentoApiServer, filters: tuple[tuple[str, str, str], ...], expected: list[str]
) -> None:
    assert skus(get(server, "/rest/all/V1/products", sc(*filters))) == expected


def test_magento_server_ands_filter_groups_and_sorts(server: MagentoApiServer) -> None:
    params = sc(("sku", "like", "24-%"), ("type_id", "eq", "simple"), group_each=True)
    params["searchCriteria[sortOrders][0][field]"] = "sku"
    params["searchCriteria[sortOrders][0][direction]"] = "DESC"
    assert skus(get(server, "/rest/all/V1/products", params)) == [
        "24-WG086",
        "24-WG085",
        "24-MB04",
        "24-MB01",
    ]


def test_magento_server_pages_past_the_end(server: MagentoApiServer) -> None:
    assert get(server, "/rest/all/V1/products", sc(pageSize="5", currentPage="4"))["items"] == []
    server.repeat_last_page = True
    body = get(server, "/rest/all/V1/products", sc(pageSize="5", currentPage="9"))
    assert skus(body) == ["240-LV04", "MS-OFF"]
    assert body["total_count"] == 12


def test_magento_server_serves_store_view_values(server: MagentoApiServer) -> None:
    params = sc(("sku", "eq", "24-MB01"))
    fr = get(server, "/rest/fr/V1/products", params)["items"][0]
    default = get(server, "/rest/V1/products", params)["items"][0]
    assert fr["name"] == "Sac de sport Joust" and fr["price"] == 36.0
    assert default["name"] == "Joust Duffle Bag&trade;"
    assert "short_description" not in {c["attribute_code"] for c in fr["custom_attributes"]}
    assert get(server, "/rest/xx/V1/products", params, status=400)["message"]
    views = [v["code"] for v in get(server, "/rest/all/V1/store/storeViews")]
    assert views == ["admin", "default", "fr"]
    websites = [w["code"] for w in get(server, "/rest/all/V1/store/websites")]
    assert websites == ["admin", "base", "eu"]


def test_magento_server_serves_category_tree_and_stock(server: MagentoApiServer) -> None:
    tree = get(server, "/rest/all/V1/categories")
    assert (tree["id"], tree["level"]) == (1, 0)
    root = tree["children_data"][0]
    assert (root["id"], root["name"]) == (2, "Default Category")
    assert [c["name"] for c in root["children_data"]] == ["Men", "Collections", "Gear", "Training"]
    low = get(
        server,
        "/rest/all/V1/stockItems/lowStock",
        {"scopeId": 0, "qty": 1000, "pageSize": 5, "currentPage": 3},
    )
    assert low["total_count"] == 12 and len(low["items"]) == 2
    few = get(server, "/rest/all/V1/stockItems/lowStock", {"scopeId": 0, "qty": 50})
    assert few["total_count"] == 5  # qty 0 x4 and 3
    one = get(server, "/rest/all/V1/stockItems/MS-OFF")
    assert (one["qty"], one["is_in_stock"]) == (3.0, True)


def test_magento_server_attribute_lookup_by_id_and_404(server: MagentoApiServer) -> None:
    color = get(server, "/rest/all/V1/products/attributes/color")
    found = get(
        server,
        "/rest/all/V1/products/attributes",
        sc(("attribute_id", "eq", str(color["attribute_id"]))),
    )
    assert [a["attribute_code"] for a in found["items"]] == ["color"]
    assert get(server, "/rest/all/V1/products/attributes/nope", status=404)["parameters"] == [
        "nope"
    ]
    tax = get(server, "/rest/all/V1/products/attributes/tax_class_id")
    assert {"label": "Taxable Goods", "value": "2"} in tax["options"]


def test_magento_server_touch_and_reload_bump_updated_at_and_keep_ids(
    server: MagentoApiServer, tmp_path: Path
) -> None:
    later = T0 + timedelta(hours=1)
    server.touch("ms-off", later)
    changed = get(server, "/rest/all/V1/products", sc(("updated_at", "gt", "2024-03-01 10:00:00")))
    assert skus(changed) == ["MS-OFF"]
    edited = tmp_path / "edited.csv"
    lines = SMALL.read_text(encoding="utf-8").split("\n")
    kept = [ln for ln in lines if not ln.startswith("24-WG086,")]
    edited.write_text("\n".join(kept).replace("Strive Shoulder Pack", "Strive Pack"), "utf-8")
    server.clock = lambda: T0 + timedelta(days=1)
    server.load(edited)
    body = get(server, "/rest/all/V1/products", sc(("updated_at", "gt", "2024-03-01 10:00:00")))
    assert skus(body) == ["24-MB04", "MS-OFF"]
    assert body["items"][0]["id"] == 7  # the same id as before the reload
    assert get(server, "/rest/all/V1/products", sc())["total_count"] == 11


def test_magento_server_injects_faults(server: MagentoApiServer) -> None:
    server.fail_next(503, times=2, retry_after=3)
    for _ in range(2):
        resp = requests.get(server.url + "/rest/all/V1/categories", headers=AUTH, timeout=10)
        assert resp.status_code == 503
        assert resp.headers["Retry-After"] == "3"
    assert get(server, "/rest/all/V1/categories")["id"] == 1
    server.fail_next(0)
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/rest/all/V1/categories", headers=AUTH, timeout=10)


def test_parse_query_nests_brackets() -> None:
    q = parse_query(
        "searchCriteria%5Bfilter_groups%5D%5B0%5D%5Bfilters%5D%5B0%5D%5Bfield%5D=sku&fields=items"
    )
    assert q == {
        "searchCriteria": {"filter_groups": {"0": {"filters": {"0": {"field": "sku"}}}}},
        "fields": "items",
    }


# Required fields of the 2.4.7 admin REST schema's definitions (AdobeDocs/commerce-webapi,
# src/openapi/admin-schema-2.4.7.yaml), written out for the answers the source reads.
SCHEMA_REQUIRED = {
    "store-data-store-interface": {"id", "code", "name", "website_id", "store_group_id", "is_active"},
    "store-data-website-interface": {"id", "code", "name", "default_group_id"},
    "eav-data-attribute-set-interface": {"attribute_set_name", "sort_order"},
    "catalog-data-category-tree-interface": {
        "parent_id", "name", "is_active", "position", "level", "product_count", "children_data",
    },
    "catalog-inventory-data-stock-item-interface": {
        "qty", "is_in_stock", "is_qty_decimal", "show_default_notification_message",
        "use_config_min_qty", "min_qty", "use_config_min_sale_qty", "min_sale_qty",
        "use_config_max_sale_qty", "max_sale_qty", "use_config_backorders", "backorders",
        "use_config_notify_stock_qty", "notify_stock_qty", "use_config_qty_increments",
        "qty_increments", "use_config_enable_qty_inc", "enable_qty_increments",
        "use_config_manage_stock", "manage_stock", "low_stock_date", "is_decimal_divided",
        "stock_status_changed_auto",
    },
    "search-results": {"items", "search_criteria", "total_count"},
}  # fmt: skip
SCHEMA_FIELDS = {
    "inventory-api-data-source-item-interface": {"sku", "source_code", "quantity", "status"},
    "inventory-api-data-stock-interface": {"stock_id", "name", "extension_attributes"},
    "inventory-api-data-stock-source-link-interface": {"stock_id", "source_code", "priority"},
}


def test_magento_server_answers_carry_the_schema_fields(server: MagentoApiServer) -> None:
    req = SCHEMA_REQUIRED
    for view in get(server, "/rest/all/V1/store/storeViews"):
        assert req["store-data-store-interface"] <= view.keys()
    for site in get(server, "/rest/all/V1/store/websites"):
        assert req["store-data-website-interface"] <= site.keys()
    sets = get(server, "/rest/all/V1/products/attribute-sets/sets/list", sc())
    assert req["search-results"] <= sets.keys()
    assert all(req["eav-data-attribute-set-interface"] <= s.keys() for s in sets["items"])
    tree = get(server, "/rest/all/V1/categories")
    assert req["catalog-data-category-tree-interface"] <= tree.keys()
    low = get(server, "/rest/all/V1/stockItems/lowStock/", {"scopeId": 0, "qty": 1e9})
    assert req["search-results"] <= low.keys()
    assert all(req["catalog-inventory-data-stock-item-interface"] <= i.keys() for i in low["items"])
    for route, definition in (
        ("source-items", "inventory-api-data-source-item-interface"),
        ("stocks", "inventory-api-data-stock-interface"),
        ("stock-source-links", "inventory-api-data-stock-source-link-interface"),
    ):
        body = get(server, f"/rest/all/V1/inventory/{route}", sc())
        assert req["search-results"] <= body.keys()
        assert body["items"] and all(SCHEMA_FIELDS[definition] <= i.keys() for i in body["items"])


def test_magento_server_refuses_per_endpoint_as_magento_does(server: MagentoApiServer) -> None:
    server.acl = server.acl - {"Magento_Customer::group"}
    body = get(server, "/rest/all/V1/customerGroups/1", status=401)
    assert body == {
        "message": "The consumer isn't authorized to access %resources.",
        "parameters": {"resources": "Magento_Customer::group"},
    }
    assert get(server, "/rest/all/V1/categories")["id"] == 1
    server.bearer_integration = False
    body = get(server, "/rest/all/V1/categories", status=401)
    assert body["parameters"] == {"resources": "Magento_Catalog::categories"}


def test_magento_server_input_limits_page_lists(server: MagentoApiServer) -> None:
    server.input_limits = True
    assert get(server, "/rest/all/V1/products", sc())["search_criteria"]["page_size"] == 20
    body = get(server, "/rest/all/V1/products", sc(pageSize="301"), status=400)
    assert "300" in str(body)
