"""What the dashboard shows, read from the feed state through the same port as
`catalogctl status` (`FeedState`, plus the snapshot blobs and the DLQ).

Nothing here scans every item of a feed for a page: the overview reads the status
counts stored beside each state bucket (`read_counts`, one small read per bucket);
an exact SKU reads the one bucket it hashes to; failures read only the buckets whose
counts show failed or retrying items; browsing and prefix search read buckets one at
a time from a cursor until a page is full.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import orjson

from catalog_sync.errors import NotFoundError
from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import KEY_SEPARATOR, bucket_of
from catalog_sync.ports import BlobStore, FeedState
from catalog_sync.sync.runs import FINISHED, FeedMeta, PartResult, RunRecord
from catalog_sync.sync.snapshot import read_bucket_items
from catalog_sync.sync.state import BucketCounts, FailingIndex, ItemState, StateBucket, Status
from catalogctl.held import held_run

STATUSES = ("sent", "pending", "retry", "failed", "deleted")
PAGE_SIZE = 50
BROWSE_READ_AHEAD = 4  # buckets per read when a prefix filters them
RUNS_SHOWN = 30
# The hourly schedule: no successful sync for longer than this is worth a look.
DEFAULT_STALE_SECONDS = 3 * 3600


@runtime_checkable
class FailingState(Protocol):
    """A feed state that keeps the failing items beside each bucket (DynamoFeedState)."""

    def read_failing(self, feed: str, buckets: list[int]) -> dict[int, FailingIndex]: ...


@runtime_checkable
class CountingState(Protocol):
    """A feed state that keeps status counts beside each bucket (DynamoFeedState)."""

    def read_counts(self, feed: str, buckets: list[int]) -> dict[int, BucketCounts]: ...


@dataclass
class Backend:
    """Where the dashboard reads: a feed state, the snapshot store, the DLQ."""

    state: FeedState
    blobs: BlobStore | None
    feeds: list[str]
    label: str  # e.g. "local stack (http://127.0.0.1:5055)" or "stack catalog-sync"
    dlq: Any = None  # a callable returning the DLQ depth, or None
    stale_seconds: int = DEFAULT_STALE_SECONDS

    def dlq_depth(self) -> int | None:
        return self.dlq() if self.dlq else None


# --- time ----------------------------------------------------------------------


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def duration_seconds(run: RunRecord) -> float | None:
    start, end = parse_time(run.started_at), parse_time(run.finished_at)
    return (end - start).total_seconds() if start and end else None


# --- overview ------------------------------------------------------------------


def held_of(runs: list[RunRecord]) -> RunRecord | None:
    """The run whose deletions the mass-deletion guard holds (`runs` newest first)."""
    docs = [r.model_dump(mode="json") for r in runs]
    held = held_run(docs)
    return runs[docs.index(held)] if held is not None else None


@dataclass
class Health:
    level: str  # ok, info, warn, bad
    words: list[str] = field(default_factory=list)


@dataclass
class FeedCard:
    feed: str
    meta: FeedMeta | None
    items: int
    counts: dict[str, int]
    last_run: RunRecord | None
    last_success: RunRecord | None
    last_export: dict[str, int]
    health: Health
    held: RunRecord | None = None  # the run whose deletions the guard holds


def feed_counts(state: FeedState, meta: FeedMeta) -> tuple[int, dict[str, int], list[int]]:
    """(items, counts by status, buckets with failed or retrying items)."""
    counts = dict.fromkeys(STATUSES, 0)
    items = 0
    failing: list[int] = []
    buckets = list(range(meta.buckets))
    if isinstance(state, CountingState):
        stored: dict[int, BucketCounts] = state.read_counts(meta.feed, buckets)
        per_bucket = [(b.bucket, b.items, b.counts) for b in stored.values()]
    else:  # a state without stored counts: decode the buckets (slow on large feeds)
        per_bucket = [
            (b.bucket, len(b.records), b.counts()) for b in state.read_buckets(meta.feed, buckets)
        ]
    for number, n, c in sorted(per_bucket):
        items += n
        for k in STATUSES:
            counts[k] += c.get(k, 0)
        if c.get("failed", 0) or c.get("retry", 0):
            failing.append(number)
    return items, counts, failing


def export_counts(parts: list[PartResult]) -> dict[str, int]:
    out = {k: sum(p.counts.get(k, 0) for p in parts) for k in ("sent", "failed", "retry")}
    out["parts"] = len(parts)
    out["errors"] = sum(1 for p in parts if p.error)
    return out


def health_of(
    counts: dict[str, int],
    last_run: RunRecord | None,
    last_success: RunRecord | None,
    dlq: int | None,
    now: datetime,
    stale_seconds: int,
    held: RunRecord | None = None,
) -> Health:
    bad: list[str] = []
    warn: list[str] = []
    info: list[str] = []
    if last_run is None:
        return Health("info", ["never synced"])
    if counts.get("failed"):
        bad.append(f"{counts['failed']:,} item(s) rejected by the SaaS service")
    if dlq:
        bad.append(f"{dlq:,} export message(s) in the dead-letter queue")
    if last_run.status == "failed":
        bad.append(f"the last run failed: {last_run.error or 'no reason recorded'}")
    withheld = last_run.counts.get("deletions_withheld", 0)
    if withheld:
        warn.append(f"{withheld:,} deletion(s) withheld (the source was not read completely)")
    if held is not None:
        warn.append(
            f"{held.counts.get('deletions_held', 0):,} deletion(s) held by the mass-deletion "
            "guard: confirm them (Actions) or fix the export"
        )
    if counts.get("retry"):
        warn.append(f"{counts['retry']:,} item(s) waiting for a retry")
    if last_run.status == "running":
        info.append("a run is in progress")
    finished = parse_time(last_success.finished_at) if last_success else None
    if finished is None:
        warn.append("no successful sync yet")
    elif (now - finished).total_seconds() > stale_seconds:
        warn.append(f"no successful sync for {relative(finished, now).removesuffix(' ago')}")
    if bad:
        return Health("bad", bad + warn + info)
    if warn:
        return Health("warn", warn + info)
    if info:
        return Health("info", info)
    return Health("ok", ["healthy: everything sent"])


def overview(backend: Backend, now: datetime) -> tuple[list[FeedCard], int | None]:
    dlq = backend.dlq_depth()
    cards = []
    for feed in backend.feeds:
        meta = backend.state.read_meta(feed)
        if meta is None:
            cards.append(
                FeedCard(feed, None, 0, dict.fromkeys(STATUSES, 0), None, None, {}, Health("info"))
            )
            cards[-1].health.words.append("never synced")
            continue
        items, counts, _ = feed_counts(backend.state, meta)
        runs = backend.state.list_runs(feed, limit=20)
        last_run = runs[0] if runs else None
        success = next((r for r in runs if r.status in FINISHED and r.finished_at), None)
        held = held_of(runs)
        export = (
            export_counts(backend.state.list_part_results(feed, last_run.run_id))
            if last_run
            else {}
        )
        health = health_of(counts, last_run, success, dlq, now, backend.stale_seconds, held)
        cards.append(FeedCard(feed, meta, items, counts, last_run, success, export, health, held))
    return cards, dlq


# --- runs ----------------------------------------------------------------------


@dataclass
class RunRow:
    run: RunRecord
    export: dict[str, int]
    duration: float | None
    errors: list[str]


def runs(backend: Backend, feed: str, limit: int = RUNS_SHOWN) -> list[RunRow]:
    out = []
    for run in backend.state.list_runs(feed, limit=limit):
        parts = backend.state.list_part_results(feed, run.run_id)
        errors = [e for e in [run.error, *(p.error for p in parts)] if e]
        out.append(RunRow(run, export_counts(parts), duration_seconds(run), errors))
    return out


def chart_data(rows: list[RunRow]) -> dict[str, list[Any]]:
    """uPlot's columns (oldest first): x as epoch seconds, then one list per series."""
    rows = [r for r in reversed(rows) if parse_time(r.run.started_at)]
    data: dict[str, list[Any]] = {"x": [], "labels": []}
    for name in ("new", "changed", "deleted", "sent", "failed", "duration"):
        data[name] = []
    for r in rows:
        started = parse_time(r.run.started_at)
        assert started is not None
        data["x"].append(started.timestamp())
        data["labels"].append(r.run.run_id)
        for name in ("new", "changed", "deleted"):
            data[name].append(r.run.counts.get(name, 0))
        data["sent"].append(r.export.get("sent", 0))
        data["failed"].append(r.export.get("failed", 0))
        data["duration"].append(r.duration)
    return data


# --- items ---------------------------------------------------------------------


@dataclass
class ItemRow:
    feed: str
    key: str
    bucket: int
    identity: dict[str, str]
    group: str
    state: ItemState

    @property
    def label(self) -> str:
        return self.key.replace(KEY_SEPARATOR, " / ")


@dataclass
class Page:
    rows: list[ItemRow]
    next_cursor: str | None  # "bucket:offset" of the next page, None at the end
    buckets_read: int


def _rows(feed: str, bucket: StateBucket, keys: list[str]) -> list[ItemRow]:
    spec = get_feed(feed)
    out = []
    for k in keys:
        ident = spec.identity_of(k)
        out.append(
            ItemRow(feed, k, bucket.bucket, ident, ident[spec.group_field], bucket.records[k])
        )
    return out


def find_group(backend: Backend, feed: str, group: str) -> tuple[list[ItemRow], StateBucket | None]:
    """Every identity of one group value (for products: one SKU), case-insensitively."""
    meta = backend.state.read_meta(feed)
    if meta is None or not group:
        return [], None
    spec = get_feed(feed)
    bucket = backend.state.read_buckets(feed, [bucket_of(group, meta.buckets)])[0]
    wanted = group.lower()
    keys = sorted(k for k in bucket.records if spec.group_of_key(k).lower() == wanted)
    return _rows(feed, bucket, keys), bucket


def parse_cursor(cursor: str | None) -> tuple[int, int]:
    if not cursor:
        return 0, 0
    m = re.fullmatch(r"(\d{1,5}):(\d{1,9})", cursor)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def browse(
    backend: Backend, feed: str, prefix: str = "", cursor: str | None = None, size: int = PAGE_SIZE
) -> Page:
    """Items in bucket order, keys sorted within a bucket; `prefix` filters the group
    value (case-insensitively). Reads buckets from the cursor until the page is full."""
    meta = backend.state.read_meta(feed)
    if meta is None:
        return Page([], None, 0)
    spec = get_feed(feed)
    number, offset = parse_cursor(cursor)
    wanted = prefix.lower()
    rows: list[ItemRow] = []
    read = 0
    ahead: list[StateBucket] = []  # read a few buckets at a time: fewer round trips
    while number < meta.buckets:
        if not ahead:
            chunk = 1 if not wanted else BROWSE_READ_AHEAD  # no prefix: one fills a page
            ahead = backend.state.read_buckets(
                feed, list(range(number, min(number + chunk, meta.buckets)))
            )
        bucket = ahead.pop(0)
        read += 1
        keys = sorted(k for k in bucket.records if spec.group_of_key(k).lower().startswith(wanted))
        take = keys[offset : offset + size - len(rows)]
        rows.extend(_rows(feed, bucket, take))
        if offset + len(take) < len(keys):
            return Page(rows, f"{number}:{offset + len(take)}", read)
        number, offset = number + 1, 0
        if len(rows) >= size:
            break
    return Page(rows, f"{number}:0" if number < meta.buckets else None, read)


def compiled_content(backend: Backend, bucket: StateBucket, keys: set[str]) -> dict[str, Any]:
    """The compiled items of `keys` from the bucket's snapshot part (live items only)."""
    if bucket.part is None or backend.blobs is None or not keys:
        return {}
    out: dict[str, Any] = {}
    try:
        for key, _hash, body in read_bucket_items(backend.blobs, bucket.part):
            if key in keys:
                out[key] = orjson.loads(body)
                if len(out) == len(keys):
                    break
    except NotFoundError:
        return {}
    return out


def sent_times(backend: Backend, rows: list[ItemRow]) -> dict[str, str]:
    """When each sent item was sent: the export of its run's part for its bucket."""
    by_run: dict[str, list[PartResult]] = {}
    out: dict[str, str] = {}
    for row in rows:
        st = row.state
        if st.status is not Status.SENT or not st.run_id:
            continue
        if st.run_id not in by_run:
            by_run[st.run_id] = backend.state.list_part_results(row.feed, st.run_id)
        part = next((p for p in by_run[st.run_id] if p.covers(row.bucket, row.key)), None)
        if part is not None:
            out[row.key] = part.finished_at
    return out


# --- failures ------------------------------------------------------------------

_ITEM_PREFIX = re.compile(r"^item \d+(?: \([^)]*\))?: ")


def reason_group(reason: str | None) -> str:
    """A reason without the item it names, so that one cause groups many items."""
    if not reason:
        return "(no reason recorded)"
    text = _ITEM_PREFIX.sub("", reason.strip())
    return re.sub(r"\d+", "N", text)[:160]


def failures(
    backend: Backend, feeds: list[str], statuses: set[str], reason: str = ""
) -> Iterator[ItemRow]:
    """Failed and retrying items, reading only the buckets whose counts show some."""
    for feed in feeds:
        meta = backend.state.read_meta(feed)
        if meta is None:
            continue
        _, _, failing = feed_counts(backend.state, meta)
        spec = get_feed(feed)
        for number, records in _failing_records(backend.state, feed, failing):
            for key in sorted(records):
                rec = records[key]
                if rec.status.value not in statuses:
                    continue
                if reason and reason_group(rec.reason) != reason:
                    continue
                ident = spec.identity_of(key)
                yield ItemRow(feed, key, number, ident, ident[spec.group_field], rec)


def _failing_records(
    state: FeedState, feed: str, buckets: list[int]
) -> Iterator[tuple[int, dict[str, ItemState]]]:
    """Per bucket with failing items, its records (failing ones at least): from the
    index kept beside each bucket where there is a complete one, else the records."""
    indexed: dict[int, FailingIndex] = {}
    if isinstance(state, FailingState):
        indexed = {b: i for b, i in state.read_failing(feed, buckets).items() if i.complete}
    rest = [b for b in buckets if b not in indexed]
    for number in buckets:
        if number in indexed:
            yield number, indexed[number].items
    for start in range(0, len(rest), 4):
        for bucket in state.read_buckets(feed, rest[start : start + 4]):
            yield bucket.bucket, bucket.records


FAILURE_COLUMNS = ("feed", "item", "status", "reason", "attempts", "since")
_FAILURE_SORT: dict[str, Callable[[ItemRow], Any]] = {
    "feed": lambda r: r.feed,
    "item": lambda r: r.label,
    "status": lambda r: r.state.status.value,
    "reason": lambda r: r.state.reason or "",
    "attempts": lambda r: r.state.attempts,
    "since": lambda r: r.state.changed_at or "",
}


def sort_failures(rows: list[ItemRow], column: str, descending: bool = False) -> None:
    """Sort every failing item (not one page) by a column; stable, so ties keep the
    feed and key order the read gave. An unknown column leaves the order alone."""
    key = _FAILURE_SORT.get(column)
    if key is not None:
        rows.sort(key=key, reverse=descending)


def last_issues(backend: Backend, feeds: list[str]) -> list[tuple[RunRecord, list[dict[str, Any]]]]:
    out = []
    for feed in feeds:
        runs = backend.state.list_runs(feed, limit=1)
        if runs and runs[0].issues:
            out.append((runs[0], list(runs[0].issues)))
    return out


# --- formatting ----------------------------------------------------------------


def relative(then: datetime, now: datetime) -> str:
    seconds = (now - then).total_seconds()
    future = seconds < 0
    s = abs(seconds)
    if s < 45:
        text = f"{int(s)} s"
    elif s < 90 * 60:
        text = f"{round(s / 60)} min"
    elif s < 36 * 3600:
        text = f"{s / 3600:.1f} h".replace(".0 h", " h")
    else:
        text = f"{round(s / 86400)} days"
    return f"in {text}" if future else f"{text} ago"
