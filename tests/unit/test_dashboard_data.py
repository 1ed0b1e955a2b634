"""The dashboard's server-side paging and sorting, over a state of many buckets."""

from __future__ import annotations

import random

from catalog_sync.feeds.spec import KEY_SEPARATOR, bucket_of
from catalog_sync.sync.runs import FeedMeta
from catalog_sync.sync.state import ItemState, StateBucket, Status
from catalogctl.dashboard import data
from tests.fakes import MemoryState

BUCKETS = 16


def _backend(skus: list[str]) -> tuple[data.Backend, MemoryState]:
    state = MemoryState()
    buckets = {b: StateBucket("products", b) for b in range(BUCKETS)}
    rng = random.Random(5)
    for sku in skus:
        for view in ("default", "fr"):
            status = rng.choice([Status.SENT, Status.SENT, Status.FAILED, Status.RETRY])
            rec = ItemState(
                "h", status, reason=f"reason {rng.randint(1, 3)}", attempts=rng.randint(0, 9)
            )
            buckets[bucket_of(sku, BUCKETS)].records[f"{sku}{KEY_SEPARATOR}{view}"] = rec
    for b in buckets.values():
        state.write_bucket(b)
    state.write_meta(FeedMeta(feed="products", buckets=BUCKETS))
    return data.Backend(state, None, ["products"], "test"), state


def _all_pages(backend: data.Backend, prefix: str, size: int) -> list[str]:
    keys: list[str] = []
    cursor = None
    while True:
        page = data.browse(backend, "products", prefix, cursor, size=size)
        assert len(page.rows) <= size
        keys += [r.key for r in page.rows]
        if page.next_cursor is None:
            return keys
        cursor = page.next_cursor


def test_browse_pages_through_every_matching_item_once_in_bucket_order():
    skus = [f"AB-{i:03d}" for i in range(120)] + [f"XY-{i:03d}" for i in range(80)]
    backend, state = _backend(skus)
    everything = state.all_records("products")
    for prefix, size in (("", 7), ("ab-0", 5), ("xy-07", 3), ("none", 4)):
        got = _all_pages(backend, prefix, size)
        expected = sorted(
            (k for k in everything if k.lower().startswith(prefix)),
            key=lambda k: (bucket_of(k.split(KEY_SEPARATOR)[0], BUCKETS), k),
        )
        assert got == expected, prefix


def test_failures_sort_over_every_failing_item_not_one_page():
    backend, _ = _backend([f"S-{i:03d}" for i in range(300)])
    rows = list(data.failures(backend, ["products"], {"failed", "retry"}))
    assert len(rows) > data.PAGE_SIZE  # more than one page
    data.sort_failures(rows, "attempts", descending=True)
    attempts = [r.state.attempts for r in rows]
    assert attempts == sorted(attempts, reverse=True) and attempts[0] == 9
    data.sort_failures(rows, "item")
    assert [r.label for r in rows] == sorted(r.label for r in rows)
    before = [r.key for r in rows]
    data.sort_failures(rows, "no-such-column")
    assert [r.key for r in rows] == before
