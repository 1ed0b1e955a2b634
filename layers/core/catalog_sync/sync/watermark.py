"""The source watermark of incremental reads, kept in the feed meta.

`incremental_since` says where the hourly sync reads from; `advance_watermark`
moves the mark in the meta the run writes under its lease, together with its
manifest (one write: a run that takes the lease later never loses either).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from catalog_sync.ports import CatalogSource, IncrementalSource
from catalog_sync.sync.runs import FeedMeta


def incremental_since(
    metas: Sequence[FeedMeta | None], now: datetime, full_read_hours: float
) -> datetime | None:
    """The oldest watermark of the feeds, or None (a full read) when a feed has none
    yet or its last full read is `full_read_hours` old (a full read finds deletions)."""
    if not metas or not all(metas):
        return None
    marks = [m.source_watermark for m in metas if m is not None]
    fulls = [m.last_full_read for m in metas if m is not None]
    if not (all(marks) and all(fulls)):
        return None
    last_full = min(datetime.fromisoformat(f) for f in fulls if f)
    if now - last_full >= timedelta(hours=full_read_hours):
        return None
    return min(datetime.fromisoformat(m) for m in marks if m)


def advance_watermark(meta: FeedMeta, source: CatalogSource, now: datetime) -> None:
    """After a read: the next incremental read starts at the source's high-water
    mark; a complete, full read is remembered as the last full read."""
    if not isinstance(source, IncrementalSource):
        return  # a source without a watermark (the export CSV is read whole)
    mark = source.high_water_mark
    if mark is None or source.failed:
        return  # a failed read does not move the watermark
    full = source.report().complete and not source.incremental
    meta.source_watermark = mark.isoformat()
    if full:
        meta.last_full_read = now.isoformat()
