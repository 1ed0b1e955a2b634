"""The application layer: events in, use-cases run with real adapters, JSON out.

One `App` is built per cold start (`App.from_env()`); nothing talks to AWS at
import time. The Lambda handlers, `catalogctl --local` and the tests all go
through `run_reindex_event` and `run_export_message`.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import boto3
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from catalog_sync.aws.dynamodb import DynamoFeedState
from catalog_sync.aws.s3 import S3BlobStore
from catalog_sync.aws.secrets import api_key_provider
from catalog_sync.aws.sqs import SqsExportQueue
from catalog_sync.errors import AuthError, ConfigError, LeaseHeldError
from catalog_sync.feeds.registry import get_feed
from catalog_sync.infra.workers import resolve_workers
from catalog_sync.observability import MetricUnit, logger, metrics
from catalog_sync.ports import CatalogSource, FeedSink
from catalog_sync.records import SourceIssue
from catalog_sync.settings import Settings
from catalog_sync.sinks.feed_api import HttpFeedSink
from catalog_sync.source_policy import allowed_source
from catalog_sync.sources.magento_csv import MagentoCsvSource
from catalog_sync.sources.magento_rest import MagentoRestSource
from catalog_sync.sync.export import ExportDeps, export_part
from catalog_sync.sync.reindex import Progress, ReindexDeps, ReindexRequest, reindex_feed
from catalog_sync.sync.runs import PartResult, RunKind
from catalog_sync.sync.snapshot import ExportMessage
from catalog_sync.targets import aco_context, aco_sink, check_feeds


class ReindexEvent(BaseModel):
    """What the reindex function accepts: `{"action": "sync"}` (also the
    EventBridge scheduled event) or `{"action": "resync", "feed": ...}`."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    action: Literal["sync", "resync", "resend"] = "sync"
    feed: str | None = None
    no_reindex: bool = False
    dry_run: bool = False
    by_ids: list[str] | None = Field(default=None, min_length=1)
    id_type: Literal["sku", "productId"] = "sku"
    source: str | None = None  # overrides CATALOG_SOURCE for this run
    failed_only: bool = False  # resync: resend what waits for a retry; no source read
    cleanup_feed: bool = False  # resync: rebuild the feed state from scratch
    continue_resync: bool = False  # resync: continue an interrupted resync

    @classmethod
    def parse(cls, event: dict[str, Any]) -> ReindexEvent:
        if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
            return cls(action="sync")  # the hourly rule passes the scheduled event as is
        return cls.model_validate(event)

    def kind(self) -> RunKind:
        if self.action != "resync":
            return self.action
        if self.failed_only:
            return "resend"
        if self.no_reindex:
            return "resync-no-reindex"
        if self.continue_resync:
            return "resync-continue"
        if self.cleanup_feed:
            return "resync-cleanup"
        return "resync-by-ids" if self.by_ids else "resync"


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
    new_id: Callable[[], str] = field(default_factory=lambda: lambda: uuid.uuid4().hex)
    progress: Progress | None = None  # long-running stages report here (the CLI's progress bar)
    _clients: dict[str, Any] = field(default_factory=dict)
    _sink: FeedSink | None = None

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
        return MagentoCsvSource(uri, s3_client=s3, workdir=workdir, store_views=views)

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


def run_reindex_event(event: dict[str, Any], app: App) -> dict[str, Any]:
    request = ReindexEvent.parse(event)
    if request.action == "resync" and not request.feed:
        raise ConfigError("a resync needs a feed")
    if request.continue_resync and (request.by_ids or request.no_reindex or request.cleanup_feed):
        raise ConfigError("--continue-resync takes no other resync option")
    feeds = [request.feed] if request.feed else app.settings.feed_names()
    for feed in feeds:
        get_feed(feed)  # fail early on an unknown feed
    check_feeds(app.settings, feeds)  # and on a feed of the other target
    kind = request.kind()
    resend = kind == "resend"
    resume_from, resumed = 0, None
    if request.continue_resync:
        resume_from, resumed = _checkpoint(app, feeds[0])
    req = ReindexRequest(
        feeds=tuple(feeds),
        kind=kind,
        force=request.action == "resync" and not resend,
        no_reindex=request.no_reindex,
        by_ids=frozenset(s.lower() for s in request.by_ids) if request.by_ids else None,
        dry_run=request.dry_run,
        resend_only=resend,
        cleanup=request.cleanup_feed,
        resume_from=resume_from,
        resumed_from=resumed,
    )
    settings = app.settings
    source = _source_for(app, request, feeds) if req.reads_source else None
    if request.id_type == "productId" and request.by_ids and source is not None:
        skus = _skus_of_product_ids(source, request.by_ids)
        req = dataclasses.replace(req, by_ids=frozenset(s.lower() for s in skus))
    deps = ReindexDeps(
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
        stale_pending_seconds=settings.stale_pending_seconds,
        workdir=Path(settings.work_dir) if settings.work_dir else None,
        progress=app.progress,
        workers=resolve_workers(settings.reindex_workers),
        aco=aco_context(settings),
    )
    started = time.monotonic()
    try:
        results = reindex_feed(req, deps)
    except LeaseHeldError as exc:
        if request.action in ("sync", "resend"):  # scheduled runs step aside, visibly
            logger.warning(str(exc))
            return {"runs": [{"feed": exc.feed, "status": "skipped", "reason": str(exc)}]}
        raise
    if deps.source is not None and not request.dry_run:
        _advance_watermark(app, feeds, deps.source)
    if request.action == "sync" and not request.dry_run:  # the heartbeat (issue 10)
        metrics.add_metric(name="SyncSucceeded", unit=MetricUnit.Count, value=1)
    out = []
    for result in results:
        run = result.run
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
                name=f"Items{name.title()}", unit=MetricUnit.Count, value=run.counts.get(name, 0)
            )
        metrics.add_metric(name="SourceIssues", unit=MetricUnit.Count, value=run.issues_total)
        doc = run.model_dump(mode="json")
        if request.dry_run:
            doc["preview"] = result.preview
        out.append(doc)
    metrics.add_metric(
        name="ReindexSeconds", unit=MetricUnit.Seconds, value=time.monotonic() - started
    )
    return {"runs": out}


def _skus_of_product_ids(source: CatalogSource, values: list[str]) -> list[str]:
    """`--by-ids ... --id-type productId`: Magento product ids to SKUs, through the
    source (only the REST API knows ids). Unknown ids are reported in the run."""
    ids: list[int] = []
    for value in values:
        try:
            number = int(value.strip())
        except ValueError:
            number = 0
        if number <= 0:
            raise ConfigError(f"--by-ids: {value!r} is not a product id (a positive integer)")
        ids.append(number)
    resolve = getattr(source, "skus_for_ids", None)
    if resolve is None:
        raise ConfigError(
            "the Magento export CSV carries no product ids: use --id-type sku with this "
            "source, or the Magento REST API as the source"
        )
    found: dict[int, str] = resolve(ids)
    missing = [i for i in ids if i not in found]
    if not found:
        raise ConfigError(
            f"no product with id {', '.join(map(str, missing))} in Magento: nothing to resync"
        )
    for number in missing:
        source.note(  # type: ignore[attr-defined]
            SourceIssue(
                f"product id {number} is not in Magento: skipped (a deleted product is "
                "sent as deleted by the next full read)",
                field="productId",
                severity="warning",
            )
        )
    return list(dict.fromkeys(found[i] for i in ids if i in found))


def _source_for(app: App, request: ReindexEvent, feeds: list[str]) -> CatalogSource:
    """A REST source reads incrementally from the feeds' watermark on the hourly sync,
    and in full on resyncs and every MAGENTO_FULL_READ_HOURS (to find deletions)."""
    uri = request.source or app.settings.catalog_source
    since = None
    if request.action == "sync" and uri and uri.startswith(("https://", "http://")):
        metas = [app.state.read_meta(f) for f in feeds]
        marks = [m.source_watermark for m in metas if m is not None]
        fulls = [m.last_full_read for m in metas if m is not None]
        if metas and all(metas) and all(marks) and all(fulls):
            last_full = min(datetime.fromisoformat(f) for f in fulls if f)
            due = app.clock() - last_full >= timedelta(hours=app.settings.magento_full_read_hours)
            if not due:
                since = min(datetime.fromisoformat(m) for m in marks if m)
    return app.source(request.source, since=since)


def _advance_watermark(app: App, feeds: list[str], source: CatalogSource) -> None:
    mark = getattr(source, "high_water_mark", None)
    if mark is None or getattr(source, "failed", False):
        return  # a failed read does not move the watermark
    full = source.report().complete and not getattr(source, "incremental", False)
    for feed in feeds:
        meta = app.state.read_meta(feed)
        if meta is None:
            continue
        meta.source_watermark = mark.isoformat()
        if full:
            meta.last_full_read = app.clock().isoformat()
        app.state.write_meta(meta)


def _checkpoint(app: App, feed: str) -> tuple[int, str]:
    """Where an interrupted resync of `feed` got to: (bucket to resume from, its run id)."""
    for run in app.state.list_runs(feed, limit=20):
        if run.kind in ("resync", "resync-continue", "resync-cleanup"):
            if run.status in ("running", "failed"):
                return run.buckets_done, run.run_id
            raise ConfigError(
                f"no interrupted resync of {feed} to continue: the last one ({run.run_id}) "
                f"is {run.status}"
            )
    raise ConfigError(f"no resync of {feed} to continue")


def _requeue(app: App, message: ExportMessage) -> None:
    """A part whose prerequisites are still exporting goes back to the queue, delayed
    (a new message: the wait does not count towards the DLQ's maxReceiveCount)."""
    app.client("sqs").send_message(
        QueueUrl=app.settings.export_queue_url,
        MessageBody=message.model_dump_json(),
        DelaySeconds=app.settings.export_requeue_delay_seconds,
    )


def run_export_message(message: ExportMessage, app: App) -> PartResult:
    deps = ExportDeps(
        state=app.state,
        blobs=app.blobs,
        sink=app.sink,
        clock=app.clock,
        requeue=lambda m: _requeue(app, m),
    )
    try:
        result = export_part(message, deps)
    except AuthError as exc:
        app.state.put_part_result(
            PartResult(
                feed=message.feed,
                run_id=message.run_id,
                bucket=message.bucket,
                finished_at=app.clock().isoformat(),
                error=f"AuthError: {exc}",
            )
        )
        raise
    for name in ("sent", "failed", "retry"):
        metrics.add_metric(
            name=f"Items{name.title()}", unit=MetricUnit.Count, value=result.counts.get(name, 0)
        )
    return result
