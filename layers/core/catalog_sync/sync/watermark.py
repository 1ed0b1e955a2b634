"""The source watermark of incremental reads, kept in the feed meta.

`incremental_since` says where the hourly sync reads from; `advance_watermark`
moves the mark in the meta the run writes under its lease, together with its
manifest (one write: a run that takes the lease later never loses either).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ReadMark:
    """What a read says about the watermark, taken when the read ends: a run that
    continues in other invocations moves the mark with its last one."""

    mark: str  # ISO 8601: where the next incremental read starts
    full: bool  # a complete, full read (remembered as the last full read)


def read_mark(source: CatalogSource | None) -> ReadMark | None:
    """The mark a finished read would move the watermark to, or None (a source
    without a watermark, a failed read: the watermark stays)."""
    if not isinstance(source, IncrementalSource):
        return None  # a source without a watermark (the export CSV is read whole)
    mark = source.high_water_mark
    if mark is None or source.failed:
        return None  # a failed read does not move the watermark
    return ReadMark(mark.isoformat(), source.report().complete and not source.incremental)


def apply_mark(meta: FeedMeta, mark: ReadMark | None, now: datetime) -> None:
    """Move the watermark in `meta` (written by the caller, under the lease)."""
    if mark is None:
        return
    meta.source_watermark = mark.mark
    if mark.full:
        meta.last_full_read = now.isoformat()


def advance_watermark(meta: FeedMeta, source: CatalogSource, now: datetime) -> None:
    """After a read: the next incremental read starts at the source's high-water
    mark; a complete, full read is remembered as the last full read."""
    apply_mark(meta, read_mark(source), now)
