"""The state of a reindex run in one invocation: its dependencies, its result, and
what each feed of it has done so far (shared by `reindex` and `handon`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from catalog_sync.feeds.spec import AcoContext, FeedSpec
from catalog_sync.ports import (
    BlobStore,
    CatalogSource,
    Clock,
    ContinuationQueue,
    ExportQueue,
    FeedState,
)
from catalog_sync.records import ReadReport
from catalog_sync.sync.compile import Collector
from catalog_sync.sync.continuation import Budget, FeedCarry
from catalog_sync.sync.diff import Differ
from catalog_sync.sync.fingerprints import Encoding
from catalog_sync.sync.guard import DeletionGuard
from catalog_sync.sync.requests import ReindexRequest
from catalog_sync.sync.runs import DEFAULT_BUCKETS, FeedMeta, RunRecord
from catalog_sync.sync.snapshot import ExportMessage
from catalog_sync.sync.watermark import ReadMark
from catalog_sync.sync.windows import WindowTracker

Progress = Callable[[str, int, int | None], None]  # (stage, done, total)


@dataclass
class ReindexDeps:
    state: FeedState
    blobs: BlobStore
    queue: ExportQueue
    clock: Clock
    new_id: Callable[[], str]
    source: CatalogSource | None = None
    store_views: tuple[tuple[str, str], ...] = (("default", "base"),)
    enabled_feeds: frozenset[str] | None = None  # the feeds the catalog is synced to (builders
    # adapt: products carry no price where the prices feed exists); default: the run's feeds
    buckets: int = DEFAULT_BUCKETS  # for a feed's first run
    lease_seconds: int = 900
    continue_visibility_seconds: int = 960  # a continuation is retried this late (lease.py)
    stale_pending_seconds: int = 1800  # a pending item queued longer ago than this is stuck
    workdir: Path | None = None
    progress: Progress | None = None
    workers: int = 1  # processes that compile a partitioned read (1: this one)
    aco: AcoContext | None = None  # the ACO target's build options
    message_items: int = 50_000  # pending items an export message carries at most
    guard: DeletionGuard = field(default_factory=DeletionGuard)  # mass-deletion limits
    lease_wait_seconds: float = 120  # a sync waits this long for a resend's lease
    sleep: Callable[[float], None] = time.sleep
    continuation: ContinuationQueue | None = None  # where a run hands itself on (None: never)
    budget_seconds: float | None = None  # this invocation's time for the run (None: unbounded)
    # the source a read that goes on in a follow-up invocation reads again (its URI, as
    # the run's first invocation described it): App.source
    open_source: Callable[[str], CatalogSource] | None = None


@dataclass
class ReindexResult:
    run: RunRecord
    messages: list[ExportMessage] = field(default_factory=list)
    preview: dict[str, list[str]] = field(default_factory=dict)  # dry run: keys by change kind
    continues: bool = False  # handed on to a follow-up invocation (the run is still running)


@dataclass
class FeedRun:
    """One feed's part of a reindex: its run record, what the read collected, its diff."""

    spec: FeedSpec
    meta: FeedMeta
    run: RunRecord
    collector: Collector | None = None
    buckets_done: int = 0  # the diff got this far (in this or earlier invocations)
    diffed: bool = False
    finished: bool = False
    differ: Differ | None = None
    carried: FeedCarry | None = None  # what an earlier invocation handed on
    result: ReindexResult | None = None
    segments: dict[int, list[int]] = field(default_factory=dict)  # bucket -> staged segments
    items_before: int = 0  # items compiled by earlier invocations of a read that went on
    found_key: str | None = None  # the read's fingerprints, staged (`handon`)
    prior_key: str | None = None  # the previous run's fingerprints the read skips by
    encoding: Encoding | None = None  # the read's fingerprints, encoded ahead of `_finish`

    @property
    def c(self) -> Collector:
        assert self.collector is not None
        return self.collector


@dataclass
class RunState:
    """What every feed of a run shares, in this invocation."""

    run_id: str
    now: datetime  # the run's time (its first invocation's)
    request: ReindexRequest
    report: ReadReport
    mark: ReadMark | None  # where the read moves the watermark, once the run completes
    budget: Budget
    workdir: Path
    sequence: int = 0  # the continuation this invocation runs (0: the first invocation)
    staged: bool = False  # the compiled items are in the snapshot bucket (continuations)
    windows: WindowTracker | None = None  # the price windows the read saw (saved per feed)
