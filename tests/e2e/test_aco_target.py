"""SAAS_TARGET=aco through the whole local stack (moto over HTTP: S3, DynamoDB, SQS,
Secrets Manager; the real handlers and the local runner), both sources.

The ACO side is `HeldCatalog`, an in-process sink that keeps what ACO would hold
(upserts by key, deletes by key), validates every item against the feeds' wire
models and refuses products whose locale has no metadata yet, as ACO does. It stands
in for the ACO sink and emulator of `sinks/aco` / `devstack/aco_emulator` until
they are merged; then these tests run against the emulator over HTTP.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from catalog_sync.feeds.aco import ACO_FEED_NAMES
from catalog_sync.feeds.aco.metadata import REQUIRED
from catalog_sync.feeds.registry import get_feed
from catalog_sync.ports import ItemOutcome, OutgoingItem, batches_of
from devstack.magento_server import MagentoApiServer
from tests.e2e.conftest import FIXTURES

SMALL = FIXTURES / "catalogs" / "small.csv"
VIEWS = "default:base,fr:base,eu_en:eu"
LOCALES = "default:en-US,fr:fr-FR,eu_en:en-GB"
TOKEN = "magento-token-0123456789"
ACO_ENV = {
    "SAAS_TARGET": "aco",
    "STORE_VIEWS": VIEWS,
    "STORE_VIEW_LOCALES": LOCALES,
    "WEBSITE_CURRENCIES": "base:USD,eu:EUR",
    "EXPORT_REQUEUE_DELAY_SECONDS": "0",
    "STATE_BUCKETS": "8",
}


class HeldCatalog:
    def __init__(self) -> None:
        self.held: dict[str, dict[str, Any]] = {f: {} for f in ACO_FEED_NAMES}
        self.requests: list[tuple[str, bool, int]] = []  # (feed, delete, items)
        self.refused: list[str] = []

    def batches(self, feed: str, items: Iterable[OutgoingItem]) -> Iterator[list[OutgoingItem]]:
        return batches_of(items, 1000)

    def send(self, feed: str, items: Any) -> list[ItemOutcome]:
        batch: list[OutgoingItem] = list(items)
        spec = get_feed(feed)
        out = []
        for deleted in (False, True):
            part = [i for i in batch if i.deleted is deleted]
            if part:
                self.requests.append((feed, deleted, len(part)))
        for item in batch:
            body = orjson.loads(item.body)
            if item.deleted:
                assert set(body) == {f.split(".")[0] for f in spec.identity}, body
                self.held[feed].pop(item.key, None)
                out.append(ItemOutcome("sent"))
                continue
            spec.model.model_validate(body)
            if feed == "acoProducts" and not self._has_metadata(body["source"]["locale"]):
                self.refused.append(item.key)
                out.append(ItemOutcome("failed", "metadata missing for the locale"))
                continue
            self.held[feed][item.key] = body
            out.append(ItemOutcome("sent"))
        return out

    def _has_metadata(self, locale: str) -> bool:
        meta = self.held["acoProductMetadata"]
        return all(f"{code}\x1f{locale}" in meta for code, *_ in REQUIRED)


def aco_stack(make_stack: Any, source: Path | None = None, **env: str) -> Any:
    s = make_stack(source, **{**ACO_ENV, **env})
    s.aco = HeldCatalog()
    s.runner.app._sink = s.aco
    return s


def test_e2e_aco_first_sync_sends_every_entity_in_order_then_nothing(make_stack) -> None:
    s = aco_stack(make_stack, SMALL)
    result = s.sync()
    runs = {r["feed"]: r for r in result["runs"]}
    assert list(runs) == list(ACO_FEED_NAMES)  # the target's default feeds
    assert s.aco.refused == []  # metadata went first
    held = s.aco.held
    assert {k.split("\x1f")[1] for k in held["acoProducts"]} == {"en-US", "fr-FR", "en-GB"}
    assert held["acoPriceBooks"]["eu"]["currency"] == "EUR"
    assert "MH01\x1fbase" not in held["acoPrices"]  # no price for a configurable parent
    warning = next(i for i in runs["acoPrices"]["issues"] if i["sku"] == "MH01")
    assert (warning["field"], warning["severity"]) == ("price", "warning")
    for feed in ACO_FEED_NAMES:
        assert held[feed], feed
    records = s.runner.app.state  # every item recorded as sent in DynamoDB
    for feed in ACO_FEED_NAMES:
        meta = records.read_meta(feed)
        assert meta is not None and meta.last_run_id
    s.aco.requests.clear()
    again = s.sync()
    assert s.aco.requests == []
    assert all(r["counts"]["new"] + r["counts"]["changed"] == 0 for r in again["runs"])


def test_e2e_aco_product_leaving_a_website_is_deleted_in_that_locale_only(
    make_stack, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.csv"
    path.write_bytes(SMALL.read_bytes())
    s = aco_stack(make_stack, path)
    s.sync()
    assert "24-MB01\x1fen-GB" in s.aco.held["acoProducts"]
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    for row in rows:
        if row["sku"] == "24-MB01" and not row["store_view_code"]:
            assert "eu" in row["product_websites"]
            row["product_websites"] = "base"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue())
    s.aco.requests.clear()
    s.sync()
    products = s.aco.held["acoProducts"]
    assert "24-MB01\x1fen-GB" not in products
    assert {"24-MB01\x1fen-US", "24-MB01\x1ffr-FR"} <= set(products)
    assert ("acoProducts", True, 1) in s.aco.requests
    assert "24-MB01\x1feu" not in s.aco.held["acoPrices"]


def test_e2e_aco_csv_and_rest_sources_give_the_same_aco_state(make_stack) -> None:
    via_csv = aco_stack(make_stack, SMALL)
    via_csv.sync()
    secret = f"magento-token-{uuid.uuid4().hex[:8]}"  # one moto server for every test
    with MagentoApiServer(SMALL, token=TOKEN, store_views=("default", "fr", "eu_en")) as shop:
        via_rest = aco_stack(
            make_stack, None, CATALOG_SOURCE=shop.url, MAGENTO_TOKEN_SECRET_ID=secret
        )
        via_rest.runner.app.client("secretsmanager").create_secret(Name=secret, SecretString=TOKEN)
        via_rest.sync()
    for feed in ACO_FEED_NAMES:
        assert via_csv.aco.held[feed], feed
        assert via_rest.aco.held[feed] == via_csv.aco.held[feed], feed


def test_e2e_aco_resync_by_ids_and_no_reindex(make_stack) -> None:
    s = aco_stack(make_stack, SMALL)
    s.sync()
    s.aco.requests.clear()
    s.resync("acoProducts", byIds=["24-MB01"])
    assert s.aco.requests == [("acoProducts", False, 3)]  # three locales of one SKU
    s.aco.requests.clear()
    dry = s.runner.reindex({"action": "resync", "feed": "acoProducts", "dryRun": True})
    s.runner.drain()
    assert s.aco.requests == [] and dry["runs"][0]["status"] == "dry-run"
    s.resync("acoPrices", noReindex=True)
    assert {f for f, _, _ in s.aco.requests} == {"acoPrices"}


def test_e2e_aco_products_part_before_metadata_goes_back_to_the_queue(make_stack) -> None:
    from catalog_sync.app import run_export_message
    from catalog_sync.sync.snapshot import ExportMessage
    from devstack.local import queue_depth

    s = aco_stack(make_stack, SMALL)
    s.runner.reindex({"action": "sync"})  # queued, not exported
    app = s.runner.app
    sqs, url = app.client("sqs"), app.settings.export_queue_url
    depth = queue_depth(sqs, url)
    runs = app.state.list_runs("acoProducts", limit=1)
    message = ExportMessage(
        feed="acoProducts", run_id=runs[0].run_id, bucket=0, part_key=None, manifest_key="m"
    )
    result = run_export_message(message, app)
    assert result.counts == {"deferred": 1} and s.aco.requests == []
    assert queue_depth(sqs, url) == depth + 1  # handed back as a new message
    assert app.state.list_part_results("acoProducts", runs[0].run_id) == []
    s.runner.drain()
    assert s.aco.refused == [] and len(s.aco.held["acoProducts"]) > 0


def test_e2e_aco_sync_through_the_real_sink_and_the_emulator(moto_endpoint: str) -> None:
    """The ACO sink over HTTP against the local emulator (IMS token, gzip bodies,
    every request validated as ACO does, metadata first): every entity lands, no
    request is refused, and an unchanged second sync sends nothing."""
    from devstack.local import LocalRunner, LocalStack
    from devstack.localaws import ResourceNames

    stack = LocalStack(
        aws_endpoint=moto_endpoint, names=ResourceNames.unique(), source=str(SMALL), target="aco"
    )
    stack.start()
    try:
        env = {**stack.env, **ACO_ENV, "ACO_MAX_REQUESTS_PER_SECOND": "50"}
        runner = LocalRunner(env)
        runner.reindex({"action": "sync"})
        runner.drain()
        aco = stack.aco
        stats = aco.stats()
        assert {str(k) for k in stats["statuses"]} == {"200"}, stats
        held = aco.state()
        assert all(held.values()), {k: len(v) for k, v in held.items()}
        locales = {p["source"]["locale"] for p in held["products"]}
        assert locales == {"en-US", "fr-FR", "en-GB"}
        state = runner.app.state
        for feed in ACO_FEED_NAMES:
            buckets = state.read_buckets(feed, list(range(8)))
            statuses = {i.status for b in buckets for i in b.records.values()}
            assert statuses == {"sent"}, (feed, statuses)
        before = sum(int(v) for v in aco.stats()["statuses"].values())
        runner.reindex({"action": "sync"})
        runner.drain()
        assert sum(int(v) for v in aco.stats()["statuses"].values()) == before
    finally:
        stack.stop()
