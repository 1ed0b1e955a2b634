"""sync/windows.py: when a product's price items change with no edit, and the list
of such SKUs the engine keeps for incremental reads."""

from __future__ import annotations

from datetime import UTC, datetime

from catalog_sync.catalog import CatalogProduct, StoreValues
from catalog_sync.records import Rejected
from catalog_sync.sync.windows import WindowTracker, due, load, next_change
from tests.fakes import MemoryBlobs


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def product(sku: str, **values: object) -> CatalogProduct:
    return CatalogProduct(sku=sku, values=StoreValues(price=10.0, **values))  # type: ignore[arg-type]


def test_next_change_is_the_first_edge_ahead_in_any_store_view() -> None:
    p = product("A", special_price=8.0, special_from=at(2024, 3, 1), special_to=at(2024, 3, 31))
    assert next_change(p, at(2024, 2, 1)) == at(2024, 3, 1)  # opens
    assert next_change(p, at(2024, 3, 15)) == at(2024, 4, 1)  # a date covers its whole day
    assert next_change(p, at(2024, 4, 1)) is None
    timed = product("B", special_price=8.0, special_to=at(2024, 3, 31, 18, 30))
    edge = next_change(timed, at(2024, 3, 1))
    assert edge is not None and at(2024, 3, 31, 18, 30) < edge < at(2024, 3, 31, 18, 31)
    assert next_change(product("C", special_to=at(2030, 1, 1)), at(2024, 1, 1)) is None
    view = product("D")
    view.overrides["fr"] = StoreValues(special_price=7.0, special_to=at(2024, 5, 1))
    assert next_change(view, at(2024, 3, 1)) == at(2024, 5, 2)


def test_tracker_full_read_replaces_partial_read_updates() -> None:
    blobs = MemoryBlobs()
    first = WindowTracker(at(2024, 3, 15))
    for p in (
        product("A", special_price=8.0, special_to=at(2024, 3, 31)),
        product("B", special_price=8.0, special_from=at(2024, 6, 1)),
        product("C"),
    ):
        first.observe(p)
    first.observe(Rejected("X", []))
    first.save(blobs, "acoPrices", full=True)
    assert set(load(blobs, "acoPrices")) == {"A", "B"}
    assert due(blobs, ["acoPrices"], at(2024, 3, 20)) == set()
    assert due(blobs, ["acoPrices", "other"], at(2024, 4, 2)) == {"A"}
    # an incremental read that re-read A after its window: A leaves, B stays
    later = WindowTracker(at(2024, 4, 2))
    later.observe(product("A", special_price=8.0, special_to=at(2024, 3, 31)))
    later.save(blobs, "acoPrices", full=False)
    assert set(load(blobs, "acoPrices")) == {"B"}
    # a full read without B's window: the list is empty
    empty = WindowTracker(at(2024, 4, 2))
    empty.observe(product("B"))
    empty.save(blobs, "acoPrices", full=True)
    assert load(blobs, "acoPrices") == {}
