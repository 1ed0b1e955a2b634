"""The fake Magento's store and inventory answers, in the shapes of the 2.4 schema."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from devstack.magento_server.catalog import _Catalog, _Rec
from devstack.magento_server.inventory import Inventory, single_source


def attribute_sets(catalog: _Catalog) -> list[dict[str, Any]]:
    return [
        {"attribute_set_id": sid, "attribute_set_name": name, "sort_order": 0, "entity_type_id": 4}
        for name, sid in sorted(catalog.attribute_sets.items(), key=lambda kv: kv[1])
    ]


def websites(catalog: _Catalog) -> list[dict[str, Any]]:
    return [{"id": 0, "code": "admin", "name": "Admin", "default_group_id": 0}] + [
        {"id": wid, "code": code, "name": code.title(), "default_group_id": wid}
        for code, wid in sorted(catalog.websites.items(), key=lambda kv: kv[1])
    ]


def _website_id(catalog: _Catalog, view_websites: Mapping[str, str], view: str) -> int:
    code = view_websites.get(view)
    return catalog.websites.get(code, 1) if code else 1


def store_views(
    catalog: _Catalog, view_websites: Mapping[str, str], inactive: Collection[str]
) -> list[dict[str, Any]]:
    admin = {"id": 0, "code": "admin", "name": "Admin", "website_id": 0, "store_group_id": 0}
    out = [{**admin, "is_active": 1}]
    for code, sid in sorted(catalog.views.items(), key=lambda kv: kv[1]):
        wid = _website_id(catalog, view_websites, code)
        out.append(
            {
                "id": sid,
                "code": code,
                "name": code.replace("_", " ").title(),
                "website_id": wid,
                "store_group_id": wid,
                "is_active": 0 if code in inactive else 1,
            }
        )
    return out


def store_configs(catalog: _Catalog, view_websites: Mapping[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "id": sid,
            "code": code,
            "website_id": _website_id(catalog, view_websites, code),
            "locale": "fr_FR" if code.startswith("fr") else "en_US",
            "base_currency_code": "USD",
            "default_display_currency_code": "USD",
            "timezone": "UTC",
            "weight_unit": "lbs",
            "base_url": "http://localhost/",
            "base_link_url": "http://localhost/",
            "base_static_url": "http://localhost/static/",
            "base_media_url": "http://localhost/media/",
            "secure_base_url": "https://localhost/",
            "secure_base_link_url": "https://localhost/",
            "secure_base_static_url": "https://localhost/static/",
            "secure_base_media_url": "https://localhost/media/",
        }
        for code, sid in sorted(catalog.views.items(), key=lambda kv: kv[1])
    ]


def inventory_routes(
    catalog: _Catalog,
    inventory: Inventory | None,
    stock_item: Callable[[_Catalog, _Rec], dict[str, Any] | None],
) -> dict[str, list[dict[str, Any]]]:
    """The `/V1/inventory/...` lists: the setup's, or a single-source shop's."""
    if inventory is None:
        legacy = []
        for rec in catalog.recs:
            item = stock_item(catalog, rec)
            if item is not None:
                legacy.append((rec.sku, rec.type_id, item))
        inventory = single_source(sorted(catalog.websites), legacy)
    return inventory.routes()
