"""Price windows: when a product's compiled content changes without an edit.

A special price applies from `special_from` to the end of `special_to`
(`feeds.products.special_active`), so a product's price items change when a window
opens or closes, though nobody edited the product. A full read (the export CSV, a
full REST read) builds every product at every run and sees it at the next sync. An
incremental read (the REST API since a watermark) only returns products updated
since: a window that passed would show only at the next full read.

So the engine keeps, per feed, the SKUs whose window has an edge ahead and when
(`windows/{feed}.json` in the snapshot bucket: `{sku: ISO time}`), from every read it
makes of a source that reads incrementally; the next incremental read also reads
the SKUs whose edge has passed (`WindowedSource.include`). A full read replaces the
list, a partial one (incremental, by ids) updates the SKUs it read. A SKU asked for
and not returned (deleted, rejected) stays listed until a full read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from catalog_sync.catalog import CatalogProduct, StoreValues
from catalog_sync.errors import NotFoundError
from catalog_sync.ports import BlobStore


def windows_key(feed: str) -> str:
    return f"windows/{feed}.json"


def _edges(v: StoreValues) -> Iterable[datetime]:
    """The times `special_active` turns for these values."""
    if v.special_price is None:
        return
    if v.special_from is not None:
        yield v.special_from
    end = v.special_to
    if end is not None:
        if (end.hour, end.minute, end.second, end.microsecond) == (0, 0, 0, 0):
            yield end + timedelta(days=1)  # a date covers the whole day
        else:
            yield end + timedelta(microseconds=1)


def next_change(product: CatalogProduct, now: datetime) -> datetime | None:
    """The first time after `now` a special price window of the product opens or
    closes, in any store view; None when there is none."""
    views = [product.values, *(product.values_for(view) for view in product.overrides)]
    ahead = [e for v in views for e in _edges(v) if e > now]
    return min(ahead, default=None)


def load(blobs: BlobStore, feed: str) -> dict[str, str]:
    try:
        data = orjson.loads(blobs.get_bytes(windows_key(feed)))
    except NotFoundError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def due(blobs: BlobStore, feeds: Iterable[str], now: datetime) -> set[str]:
    """The SKUs of these feeds whose window edge is at or before `now`."""
    return {
        sku
        for feed in feeds
        for sku, when in load(blobs, feed).items()
        if datetime.fromisoformat(when) <= now
    }


@dataclass
class WindowTracker:
    """What one read saw: the next window edge of each product it built."""

    now: datetime
    seen: dict[str, datetime | None] = field(default_factory=dict)

    def observe(self, entry: object) -> None:
        if isinstance(entry, CatalogProduct):
            self.seen[entry.sku] = next_change(entry, self.now)

    def save(self, blobs: BlobStore, feed: str, *, full: bool) -> None:
        """The feed's list after this read: replaced by a full read, updated by a
        partial one."""
        listed = {} if full else load(blobs, feed)
        for sku, edge in self.seen.items():
            if edge is None:
                listed.pop(sku, None)
            else:
                listed[sku] = edge.isoformat()
        if listed or blobs.exists(windows_key(feed)):
            blobs.put_bytes(windows_key(feed), orjson.dumps(listed, option=orjson.OPT_SORT_KEYS))
