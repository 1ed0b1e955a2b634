"""The application layer: events in, use-cases run with real adapters, JSON out.

One `App` is built per cold start (`App.from_env()`); nothing talks to AWS at
import time. The Lambda handlers, `catalogctl --local` and the tests all go
through `run_reindex_event` and `run_export_message`.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from catalog_sync.aws.dynamodb import DynamoFeedState
from catalog_sync.aws.s3 import S3BlobStore
from catalog_sync.aws.secrets import api_key_provider
from catalog_sync.aws.sqs import SqsContinuationQueue, SqsExportQueue
from catalog_sync.errors import LeaseHeldError, RefusedError, RequestError
from catalog_sync.feeds.registry import get_feed
from catalog_sync.infra import heap
from catalog_sync.infra.workers import resolve_workers
from catalog_sync.observability import MetricUnit, logger, metrics
from catalog_sync.ports import CatalogSource, FeedSink, PacedSink
from catalog_sync.settings import Settings
from catalog_sync.sinks.feed_api import HttpFeedSink
from catalog_sync.source_policy import allowed_source
from catalog_sync.sources.inventory import parse_stocks
from catalog_sync.sources.magento_csv import MagentoCsvSource
from catalog_sync.sources.magento_rest import MagentoRestSource
from catalog_sync.sync.export import Budget, ExportDeps, ExportResult, export_part
from catalog_sync.sync.guard import DeletionGuard, release_command
from catalog_sync.sync.reindex import (
    Progress,
    ReindexDeps,
    ReindexResult,
    continue_run,
    reindex_feed,
)
from catalog_sync.sync.requests import ReindexEvent
from catalog_sync.sync.runs import ContinuationMessage, RunRecord
from catalog_sync.sync.snapshot import ExportMessage
from catalog_sync.sync.watermark import incremental_since
from catalog_sync.targets import aco_context, aco_sink, check_feeds

__all__ = [
    "App",
    "ReindexEvent",
    "current_app",
    "export_budget",
    "run_continuation",
    "run_export_message",
    "run_reindex_event",
]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class App:
    settings: Settings
    session: Any = None  # boto3.Session
    endpoint_url: str | None = (
        None  # AWS endpoint override (the local stack); else AWS_ENDPOINT_URL
    )
    clock: Callable[[], datetime] = utc_now
    sleep: Callable[[float], None] = time.sleep  # a sync waiting for a resend's lease
    new_id: Callable[[], str] = field(default_factory=lambda: lambda: uuid.uuid4().hex)
    progress: Progress | None = None  # long-running stages report here (the CLI's progress bar)
    _clients: dict[str, Any] = field(default_factory=dict)
    _sink: FeedSink | None = None
    # Until when (epoch seconds) the sink's shared budget is out: the export takes no
    # more parts before then, it hands them back to the queue (the ACO license).
    paced_until: float = 0.0

    @classmethod
    def from_env(cls) -> App:
        return cls(settings=Settings.from_env(), session=boto3.session.Session())

    def client(self, name: str) -> Any:
        if name not in self._clients:
            session = self.session or boto3.session.Session()
            self._clients[name] = session.client(name, endpoint_url=self.endpoint_url)
        return self._clients[name]

    @property
    def blobs(self) -> S3BlobStore:
        return S3BlobStore(self.client("s3"), self.settings.snapshot_bucket)

    @property
    def state(self) -> DynamoFeedState:
        return DynamoFeedState(
            self.client("dynamodb"),
            self.settings.state_table,
            overflow=self.blobs,
            run_retention_days=self.settings.run_retention_days,
        )

    @property
    def queue(self) -> SqsExportQueue:
        return SqsExportQueue(self.client("sqs"), self.settings.export_queue_url)

    @property
    def continuations(self) -> SqsContinuationQueue | None:
        """Where a run that runs out of time hands itself on (None: it never does)."""
        url = self.settings.continue_queue_url
        return SqsContinuationQueue(self.client("sqs"), url) if url else None

    @property
    def sink(self) -> FeedSink:
        if self._sink is None and self.settings.saas_target == "aco":
            self._sink = aco_sink(self)  # the target picks the sink (catalog_sync.targets)
        if self._sink is None:
            s = self.settings
            key = self._secret(s.saas_api_key_secret_id, s.saas_api_key_parameter, "SaaS API key")
            self._sink = HttpFeedSink(
                s.saas_base_url,
                s.saas_environment_id,
                key,
                max_items=s.saas_max_items,
                max_bytes=s.saas_max_bytes,
                max_tries=s.saas_max_tries,
                timeout=(5.0, s.saas_timeout_seconds),
            )
        return self._sink

    def source(self, uri: str | None, *, since: datetime | None = None) -> CatalogSource:
        """The catalog source: a Magento export CSV (path or s3://) or the Magento
        REST API (https://shop.example.com), read since `since` where it can."""
        s = self.settings
        uri = allowed_source(uri, s.catalog_source, s.catalog_source_allow)  # or refuses
        workdir = Path(s.work_dir) if s.work_dir else None
        views = [code for code, _ in s.store_view_pairs()]
        if uri.startswith(("https://", "http://")):
            token = self._secret(
                s.magento_token_secret_id, s.magento_token_parameter, "Magento API token"
            )
            return MagentoRestSource(
                uri,
                token,
                page_size=s.magento_page_size,
                concurrency=s.magento_concurrency,
                max_tries=s.magento_max_tries,
                since=since,
                store_views=views,
            )
        s3 = self.client("s3") if uri.startswith("s3://") else None
        # Rows of other store views are skipped (and reported), never built: a bad
        # value there must not reject the product.
        stock_sources, optional = s.catalog_stock_sources, False
        if not stock_sources and s3 is None:  # a local catalog: its folder's Stock Sources file
            local = Path(uri.removeprefix("file://"))
            stock_sources, optional = str(local.with_name("stock_sources.csv")), True
        return MagentoCsvSource(
            uri, s3_client=s3, workdir=workdir, store_views=views,
            stock_sources=stock_sources, stock_sources_optional=optional,
            stocks=parse_stocks(s.inventory_stocks), partition_bytes=s.csv_partition_bytes,
            workers=resolve_workers(s.reindex_workers),  # pass 1 by byte ranges
        )  # fmt: skip

    def _secret(self, secret_id: str | None, parameter: str | None, name: str) -> Callable[[], str]:
        return api_key_provider(
            secret_id=secret_id,
            parameter_name=parameter,
            max_age=self.settings.secret_max_age_seconds,
            secrets_client=self.client("secretsmanager") if secret_id else None,
            ssm_client=self.client("ssm") if parameter else None,
            name=name,
        )


_current: App | None = None


def current_app() -> App:
    """The App of this process, built from the environment once per cold start."""
    global _current
    if _current is None:
        _current = App.from_env()
    return _current


def use_app(app: App | None) -> None:
    """Install the App the handlers use (the local runner and tests), or forget it."""
    global _current
    _current = app


def run_reindex_event(
    event: dict[str, Any], app: App, remaining_seconds: float | None = None
) -> dict[str, Any]:
    """Parse the event (one run mode), run it with this App's adapters, report the runs.
    `remaining_seconds`: the invocation's time left (the Lambda context's); a run
    that outgrows it continues in follow-up invocations."""
    request = ReindexEvent.parse(event)
    feeds = [request.feed] if request.feed else app.settings.feed_names()
    for feed in feeds:
        try:
            get_feed(feed)  # fail early on an unknown feed
        except KeyError as exc:
            raise RequestError(str(exc.args[0])) from None
    check_feeds(app.settings, feeds)  # and on a feed of the other target
    req = request.to_request(tuple(feeds))
    source = _source_for(app, request, feeds) if req.reads_source else None
    started = time.monotonic()
    deps = _reindex_deps(app, source, remaining_seconds)
    heap.settle()  # the clients exist now (catalog_sync.infra.heap)
    if request.action == "resend":
        deps.budget_seconds = run_budget(app.settings, remaining_seconds, resend=True)
    try:
        results = reindex_feed(req, deps)
    except LeaseHeldError as exc:
        if request.action in ("sync", "resend"):  # scheduled runs step aside, visibly
            return _skipped(request.action, exc)
        raise  # a resync: refused (the handler answers with the reason)
    if request.action == "sync" and not request.dry_run:
        _heartbeat(results)
    out = _run_docs(results, with_preview=request.dry_run)
    elapsed = time.monotonic() - started
    for feed in feeds:
        metrics.add_metric("ReindexSeconds", MetricUnit.Seconds, elapsed, feed=feed)
    return {"runs": out}


def run_continuation(
    message: ContinuationMessage, app: App, remaining_seconds: float | None = None
) -> dict[str, Any]:
    """A follow-up invocation of a run (a message of the continuation queue)."""
    started = time.monotonic()
    deps = _reindex_deps(app, None, remaining_seconds)
    heap.settle()  # the clients exist now (catalog_sync.infra.heap)
    results = continue_run(message, deps)
    if results and results[0].run.kind == "sync":
        _heartbeat(results)
    elapsed = time.monotonic() - started
    for feed in message.feeds:
        metrics.add_metric("ReindexSeconds", MetricUnit.Seconds, elapsed, feed=feed)
    return {"runs": _run_docs(results, with_preview=False)}


def _heartbeat(results: list[ReindexResult]) -> None:
    """SyncSucceeded (issue 10): once per sync, by the invocation that completes it."""
    if results and not any(r.continues or r.run.status in ("running", "failed") for r in results):
        metrics.add_metric("SyncSucceeded", MetricUnit.Count, 1)


def _run_docs(results: list[ReindexResult], *, with_preview: bool) -> list[dict[str, Any]]:
    out = []
    for result in results:
        if result.continues:
            logger.info(
                "reindex continues in a follow-up invocation",
                extra={"feed": result.run.feed, "continuation": result.run.continuations},
            )
        elif result.run.status != "running":
            _report_run(result.run)
        doc = result.run.model_dump(mode="json")
        doc["continues"] = result.continues
        if with_preview:
            doc["preview"] = result.preview
        out.append(doc)
    return out


def run_budget(
    settings: Settings, remaining_seconds: float | None, *, resend: bool = False
) -> float | None:
    """An invocation's time for a run: RUN_TIME_BUDGET_SECONDS, at most the context's
    remaining time less RUN_TIME_MARGIN_SECONDS (what a hand-on needs); None: no limit.
    A scheduled resend (it reads no source: seconds) has only the context's time: a
    sync that meets its lease waits for it (`sync/lease.py`), and would be skipped if
    the resend went on in continuations (hour after hour on a large feed)."""
    limits = []
    if remaining_seconds is not None:
        limits.append(max(0.0, remaining_seconds - settings.run_time_margin_seconds))
    if settings.run_time_budget_seconds is not None and not resend:
        limits.append(settings.run_time_budget_seconds)
    return min(limits) if limits else None


def _skipped(action: str, exc: LeaseHeldError) -> dict[str, Any]:
    """A scheduled run that met another run's lease. A resend's work is done by any
    reindex run (it queues every bucket with waiting items); a skipped sync is not,
    so it is counted (`RunsSkipped`, per feed and in total) besides the log line."""
    reason = str(exc)
    if action == "resend":
        reason += "; that run sends the waiting items itself"
        logger.info(reason)
    else:
        logger.warning(reason)
        metrics.add_metric("RunsSkipped", MetricUnit.Count, 1, feed=exc.feed, total=True)
    return {"runs": [{"feed": exc.feed, "status": "skipped", "reason": reason}]}


def refused(exc: RefusedError) -> dict[str, Any]:
    """The result of a refused request (bad options, an unknown feed, a source outside
    the allow-list, a lease held by another run): a clear answer, not a function
    error, so the errors alarm is not raised by an operator's mistake."""
    logger.warning("request refused: %s", exc)
    metrics.add_metric("RequestsRefused", MetricUnit.Count, 1)
    return {"status": "refused", "reason": str(exc), "runs": []}


def _reindex_deps(
    app: App, source: CatalogSource | None, remaining_seconds: float | None = None
) -> ReindexDeps:
    settings = app.settings
    return ReindexDeps(
        state=app.state,
        blobs=app.blobs,
        queue=app.queue,
        clock=app.clock,
        new_id=app.new_id,
        source=source,
        store_views=tuple(settings.store_view_pairs()),
        enabled_feeds=frozenset(settings.feed_names()),
        buckets=settings.state_buckets,
        lease_seconds=settings.lease_seconds,
        continue_visibility_seconds=settings.continue_visibility_seconds,
        stale_pending_seconds=settings.stale_pending_seconds,
        workdir=Path(settings.work_dir) if settings.work_dir else None,
        progress=app.progress,
        workers=resolve_workers(settings.reindex_workers),
        aco=aco_context(settings),
        message_items=settings.export_message_items,
        continuation=app.continuations,
        budget_seconds=run_budget(settings, remaining_seconds),
        open_source=app.source,  # a read that goes on in a follow-up invocation
        guard=DeletionGuard(settings.max_delete_fraction, settings.max_deletes),
        lease_wait_seconds=settings.lease_wait_seconds,
        sleep=app.sleep,
    )


def _report_run(run: RunRecord) -> None:
    logger.info(
        "reindex finished",
        extra={
            "feed": run.feed,
            "run_id": run.run_id,
            "counts": run.counts,
            "issues": run.issues_total,
        },
    )
    for name in ("new", "changed", "deleted", "unchanged"):
        metrics.add_metric(
            f"Items{name.title()}", MetricUnit.Count, run.counts.get(name, 0), feed=run.feed
        )
    metrics.add_metric("SourceIssues", MetricUnit.Count, run.issues_total, feed=run.feed)
    if run.status == "held":  # the HeldRunsAlarm watches the total (service dimension)
        logger.warning(
            "deletions held",
            extra={
                "feed": run.feed,
                "held": run.counts.get("deletions_held", 0),
                "reason": run.held,
                "release": release_command(run.feed),
            },
        )
        metrics.add_metric("RunsHeld", MetricUnit.Count, 1, feed=run.feed, total=True)


def _source_for(app: App, request: ReindexEvent, feeds: list[str]) -> CatalogSource:
    """A REST source reads incrementally from the feeds' watermark on the hourly sync,
    and in full on resyncs and every MAGENTO_FULL_READ_HOURS (to find deletions)."""
    uri = request.source or app.settings.catalog_source
    since = None
    if request.action == "sync" and uri and uri.startswith(("https://", "http://")):
        metas = [app.state.read_meta(f) for f in feeds]
        since = incremental_since(metas, app.clock(), app.settings.magento_full_read_hours)
    return app.source(request.source, since=since)


def _requeue(app: App, message: ExportMessage, delay: float | None = None) -> None:
    """A message goes back to the queue as a new message (the wait does not count
    towards the DLQ's maxReceiveCount): delayed, for a part whose prerequisites are
    still exporting or whose sink budget is out; at once (`delay=0`), for the work an
    export hands back when its time runs low."""
    seconds = app.settings.export_requeue_delay_seconds if delay is None else delay
    app.client("sqs").send_message(
        QueueUrl=app.settings.export_queue_url,
        MessageBody=message.model_dump_json(),
        DelaySeconds=min(900, max(0, math.ceil(seconds))),
    )


def _paced(message: ExportMessage, app: App, reason: str) -> ExportResult:
    """The message goes back to the queue until the budget frees; nothing more is sent."""
    _requeue(app, message, app.paced_until - time.time())
    logger.info(
        "export handed back until the ACO budget frees up",
        extra={"feed": message.feed, "part": message.describe(), "reason": reason},
    )
    return ExportResult(message.feed, message.run_id, counts={"paced": 1}, error=reason)


def export_budget(settings: Settings, remaining_seconds: float | None) -> Budget | None:
    """The time an export invocation may use: RUN_TIME_BUDGET_SECONDS, at most what the
    Lambda context has left; None when neither is known (no limit)."""
    limits = [s for s in (settings.run_time_budget_seconds, remaining_seconds) if s is not None]
    return Budget(min(limits)) if limits else None


def run_export_message(
    message: ExportMessage, app: App, *, budget: Budget | None = None
) -> ExportResult:
    """Export one message; with a budget, the work left when it runs low goes back to
    the queue as a new message."""
    if app.paced_until > time.time():  # an earlier part found the budget out: take no more
        return _paced(message, app, "paced: not started, the budget is out for now")
    deps = ExportDeps(
        state=app.state,
        blobs=app.blobs,
        sink=app.sink,
        clock=app.clock,
        requeue=lambda m: _requeue(app, m),
        handback=lambda m: _requeue(app, m, delay=0),
        budget=budget,
    )
    heap.settle()  # the clients exist now (catalog_sync.infra.heap)
    result = export_part(message, deps)  # an AuthError is recorded in the part results
    for name in ("sent", "failed", "retry"):
        metrics.add_metric(
            f"Items{name.title()}",
            MetricUnit.Count,
            result.counts.get(name, 0),
            feed=result.feed,
            total=name == "failed",  # the FailedItemsAlarm watches the total
        )
    metrics.add_metric("ExportRequests", MetricUnit.Count, result.requests, feed=result.feed)
    if result.handed_back is not None:
        metrics.add_metric("ExportHandbacks", MetricUnit.Count, 1, feed=result.feed)
    sink = deps.sink
    until = sink.take_paced() if isinstance(sink, PacedSink) else None
    if until is not None:
        app.paced_until = until
    if result.paced and result.handed_back is not None:  # the unfinished buckets, later
        delay = app.paced_until - time.time() if until is not None else None
        _requeue(app, result.handed_back, delay)
    elif until is not None and result.handed_back is None:  # what is left goes again
        _paced(message, app, "paced: the rest waits for the budget")
    return result
