"""SAAS_TARGET=aco through the whole local stack: moto over HTTP (S3, DynamoDB, SQS,
Secrets Manager), the real handlers and the local runner, the real ACO sink (IMS
token, gzip bodies, pacing through DynamoDB) and the local ACO emulator over HTTP,
which validates every request as ACO does (wire schema, metadata first) and keeps
what ACO would hold. Every test checks that the emulator refused no request.
"""

from __future__ import annotations

import csv
import io
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from catalog_sync.feeds.aco import ACO_FEED_NAMES
from catalog_sync.sinks.aco import wire
from catalog_sync.sinks.aco.factory import build_aco_sink
from devstack.aco_emulator import item_key
from devstack.local import LocalRunner, LocalStack, queue_depth
from devstack.localaws import ResourceNames
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
    "ACO_MAX_REQUESTS_PER_SECOND": "50",
}
# The emulator's entities by our feeds.
ENTITY = {feed: wire.entity(feed) for feed in ACO_FEED_NAMES}


class AcoStack:
    """A local stack with the ACO emulator, and a runner over it."""

    def __init__(self, stack: LocalStack, **env: str) -> None:
        self.stack = stack
        self.env = {**stack.env, **ACO_ENV, **env}
        self.runner = LocalRunner(self.env)
        self.aco = stack.aco

    def sync(self, **event: object) -> dict:
        result = self.runner.reindex({"action": "sync", **event})
        self.runner.drain()
        return result

    def resync(self, feed: str, **event: object) -> dict:
        result = self.runner.reindex({"action": "resync", "feed": feed, **event})
        self.runner.drain()
        return result

    def held(self, feed: str) -> dict[str, dict[str, Any]]:
        """What the emulator holds of a feed's entity, by our identity key."""
        ent = ENTITY[feed]
        return {"\x1f".join(item_key(ent, i)): i for i in self.aco.state()[ent.name]}

    def requests(self) -> list[tuple[str, bool, int]]:
        """(feed, delete, items) of every request the emulator took."""
        out = []
        for r in self.aco.requests:
            found = wire.by_path(r["path"].removeprefix(f"/{self.aco.tenant}"))
            assert found is not None, r
            ent, delete = found
            feed = next(f for f, e in ENTITY.items() if e is ent)
            out.append((feed, delete, r["items"]))
        return out

    def refused(self) -> dict[str, int]:
        return {k: v for k, v in self.aco.stats()["statuses"].items() if str(k) != "200"}


@pytest.fixture
def aco_stack(moto_endpoint: str) -> Iterator[Any]:
    started: list[LocalStack] = []

    def make(source: Path | None = None, **env: str) -> AcoStack:
        stack = LocalStack(
            aws_endpoint=moto_endpoint,
            names=ResourceNames.unique(),
            source=str(source) if source else None,
            target="aco",
        )
        stack.start()
        started.append(stack)
        return AcoStack(stack, **env)

    yield make
    for s in started:
        s.stop()


def test_e2e_aco_first_sync_sends_every_entity_in_order_then_nothing(aco_stack) -> None:
    s = aco_stack(SMALL)
    result = s.sync()
    runs = {r["feed"]: r for r in result["runs"]}
    assert list(runs) == list(ACO_FEED_NAMES)  # the target's default feeds
    assert s.refused() == {}  # every request valid, metadata first
    for feed in ACO_FEED_NAMES:
        assert s.held(feed), feed
    products = s.held("acoProducts")
    assert {k.split("\x1f")[1] for k in products} == {"en-US", "fr-FR", "en-GB"}
    assert s.held("acoPriceBooks")["eu"]["currency"] == "EUR"
    assert "MH01\x1fbase" not in s.held("acoPrices")  # no price for a configurable parent
    warning = next(i for i in runs["acoPrices"]["issues"] if i["sku"] == "MH01")
    assert (warning["field"], warning["severity"]) == ("price", "warning")
    state = s.runner.app.state  # every item recorded as sent in DynamoDB
    for feed in ACO_FEED_NAMES:
        meta = state.read_meta(feed)
        assert meta is not None and meta.last_run_id
        buckets = state.read_buckets(feed, list(range(8)))
        statuses = {i.status for b in buckets for i in b.records.values()}
        assert statuses == {"sent"}, (feed, statuses)
        # what the emulator holds is what the state says was sent, item for item
        assert len(s.held(feed)) == sum(len(b.records) for b in buckets), feed
    first = s.requests()
    assert [f for f, _, _ in first] == sorted(
        (f for f, _, _ in first), key=list(ACO_FEED_NAMES).index
    )  # one entity after the other, in ACO's order
    again = s.sync()
    assert s.requests() == first  # nothing more was sent
    assert all(r["counts"]["new"] + r["counts"]["changed"] == 0 for r in again["runs"])


def test_e2e_aco_product_leaving_a_website_is_deleted_in_that_locale_only(
    aco_stack, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.csv"
    path.write_bytes(SMALL.read_bytes())
    s = aco_stack(path)
    s.sync()
    assert "24-MB01\x1fen-GB" in s.held("acoProducts")
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
    before = len(s.requests())
    s.sync()
    products = s.held("acoProducts")
    assert "24-MB01\x1fen-GB" not in products
    assert {"24-MB01\x1fen-US", "24-MB01\x1ffr-FR"} <= set(products)
    assert ("acoProducts", True, 1) in s.requests()[before:]
    assert "24-MB01\x1feu" not in s.held("acoPrices")
    assert s.refused() == {}


def test_e2e_aco_csv_and_rest_sources_give_the_same_aco_state(aco_stack) -> None:
    via_csv = aco_stack(SMALL)
    via_csv.sync()
    secret = f"magento-token-{uuid.uuid4().hex[:8]}"  # one moto server for every test
    with MagentoApiServer(SMALL, token=TOKEN, store_views=("default", "fr", "eu_en")) as shop:
        via_rest = aco_stack(None, CATALOG_SOURCE=shop.url, MAGENTO_TOKEN_SECRET_ID=secret)
        via_rest.runner.app.client("secretsmanager").create_secret(Name=secret, SecretString=TOKEN)
        via_rest.sync()
        ids = {rec.sku: str(rec.id) for rec in shop.catalog.recs}
    # The REST API gives Magento's product ids (externalIds); the export CSV has none.
    rest_products = via_rest.held("acoProducts")
    for product in rest_products.values():
        assert product.pop("externalIds") == [
            {"id": ids[product["sku"]], "origin": "AdobeCommerce"}
        ]
    assert rest_products == via_csv.held("acoProducts")
    for feed in ACO_FEED_NAMES:
        assert via_csv.held(feed), feed
        if feed != "acoProducts":
            assert via_rest.held(feed) == via_csv.held(feed), feed
    assert via_csv.refused() == via_rest.refused() == {}


@pytest.mark.parametrize("budget", ["", "0"], ids=["one-invocation", "continued"])
def test_e2e_aco_rest_special_price_window_closing_drops_the_discount_at_the_next_sync(
    aco_stack, budget: str
) -> None:
    """REST source, incremental syncs: 24-MB01's special price runs 3/1/24 to 3/31/24
    and the product is never edited. The hourly sync after the window closed reads
    only what was updated since its watermark, and 24-MB01 too (its window edge was
    remembered): its discount is dropped then, not at the next full read. The same
    when every run continues in follow-up invocations (the windows are carried)."""
    budget_env = {"RUN_TIME_BUDGET_SECONDS": budget} if budget else {}
    secret = f"magento-token-{uuid.uuid4().hex[:8]}"
    with MagentoApiServer(SMALL, token=TOKEN, store_views=("default", "fr", "eu_en")) as shop:
        s = aco_stack(
            None,
            CATALOG_SOURCE=shop.url,
            MAGENTO_TOKEN_SECRET_ID=secret,
            MAGENTO_FULL_READ_HOURS="100000",
            **budget_env,
        )
        app = s.runner.app
        app.client("secretsmanager").create_secret(Name=secret, SecretString=TOKEN)

        def sync_at(day: datetime) -> dict[str, Any]:
            app.clock = lambda: day
            return s.sync()

        for rec in shop.catalog.recs:  # last edited on 3/1/24
            shop.touch(rec.sku, at=datetime(2024, 3, 1, 9, tzinfo=UTC))
        sync_at(datetime(2024, 3, 15, 12, tzinfo=UTC))  # full read: the window is open
        price = s.held("acoPrices")["24-MB01\x1fbase"]
        assert [d["code"] for d in price["discounts"]] == ["special_price"]
        # an edit elsewhere: the watermark moves past 24-MB01
        shop.touch("24-MB04", at=datetime(2024, 3, 18, 9, tzinfo=UTC))
        sync_at(datetime(2024, 3, 20, 12, tzinfo=UTC))
        mark = len(s.requests())
        result = sync_at(datetime(2024, 4, 2, 12, tzinfo=UTC))  # the window closed
        prices_run = next(r for r in result["runs"] if r["feed"] == "acoPrices")
        assert (result.get("invocations", 1) > 1) == bool(budget)
        assert not prices_run["complete"]  # an incremental read
        assert prices_run["counts"]["records"] == 2  # 24-MB04 (the overlap), 24-MB01 (due)
        assert s.held("acoPrices")["24-MB01\x1fbase"]["discounts"] == []
        assert s.held("acoPrices")["24-MB01\x1feu"]["discounts"] == []
        assert s.requests()[mark:] == [("acoPrices", False, 2)]  # its two prices, nothing else
        assert s.refused() == {}


def test_e2e_aco_resync_by_ids_and_no_reindex(aco_stack) -> None:
    s = aco_stack(SMALL)
    s.sync()
    mark = len(s.requests())
    s.resync("acoProducts", byIds=["24-MB01"])
    assert s.requests()[mark:] == [("acoProducts", False, 3)]  # three locales of one SKU
    mark = len(s.requests())
    dry = s.runner.reindex({"action": "resync", "feed": "acoProducts", "dryRun": True})
    s.runner.drain()
    assert s.requests()[mark:] == [] and dry["runs"][0]["status"] == "dry-run"
    s.resync("acoPrices", noReindex=True)
    assert {f for f, _, _ in s.requests()[mark:]} == {"acoPrices"}
    assert s.refused() == {}


def test_e2e_aco_products_part_before_metadata_goes_back_to_the_queue(aco_stack) -> None:
    from catalog_sync.app import run_export_message
    from catalog_sync.sync.snapshot import ExportMessage

    s = aco_stack(SMALL)
    s.runner.reindex({"action": "sync"})  # queued, not exported
    app = s.runner.app
    sqs, url = app.client("sqs"), app.settings.export_queue_url
    depth = queue_depth(sqs, url)
    runs = app.state.list_runs("acoProducts", limit=1)
    message = ExportMessage(
        feed="acoProducts", run_id=runs[0].run_id, bucket=0, part_key=None, manifest_key="m"
    )
    result = run_export_message(message, app)
    assert result.counts == {"deferred": 1} and s.requests() == []
    assert queue_depth(sqs, url) == depth + 1  # handed back as a new message
    assert app.state.list_part_results("acoProducts", runs[0].run_id) == []
    s.runner.drain()
    assert s.refused() == {} and len(s.held("acoProducts")) > 0


# -- the license: products per minute --------------------------------------------------

BUDGET = 6  # products a window
WINDOW = 2  # seconds: the pacer's and the emulator's window (60 in production)


class _Atomic:
    """moto applies a conditional update non-atomically when two threads race (see
    tests/adapters/test_aco_sink.py); DynamoDB applies each atomically. One lock
    around the pacer's calls stands in for that."""

    lock = threading.Lock()

    def __init__(self, client: Any) -> None:
        self._client = client

    def update_item(self, **kw: Any) -> Any:
        with self.lock:
            return self._client.update_item(**kw)

    def get_item(self, **kw: Any) -> Any:
        with self.lock:
            return self._client.get_item(**kw)


def _budgeted(runner: LocalRunner, window: int = WINDOW) -> None:
    """The runner's sink, built from the settings as in Lambda, with a short window."""
    app = runner.app
    app._sink = build_aco_sink(
        app.settings,
        secrets_client=app.client("secretsmanager"),
        dynamodb_client=_Atomic(app.client("dynamodb")),
        pacing_window_seconds=window,
    )


def test_e2e_aco_product_budget_spreads_the_load_over_invocations_nothing_lost_or_twice(
    aco_stack,
) -> None:
    """An initial load under a license budget smaller than the catalog: the export
    parts go out over many invocations of two export "instances" (own App, sink,
    pacer; one budget in DynamoDB), each handing back what the budget does not cover.
    Counted at the emulator: no window over the budget, every product held, none
    accepted twice, and every item recorded as sent."""
    env = {"ACO_MAX_PRODUCTS_PER_MINUTE": str(BUDGET), "ACO_BATCH_SIZE": "5"}
    s = aco_stack(SMALL, **env)
    s.aco.products_window = WINDOW
    instances = [s.runner, LocalRunner(s.env)]
    for runner in instances:
        _budgeted(runner)
    s.runner.reindex({"action": "sync"})
    app = s.runner.app
    sqs, url = app.client("sqs"), app.settings.export_queue_url
    invocations = 0
    while queue_depth(sqs, url) and invocations < 400:
        runner = instances[invocations % 2]
        invocations += runner.drain(max_invocations=1, batch_size=3).invocations
    stats = s.aco.stats()
    assert s.refused() == {}
    assert 0 < stats["maxProductsPerWindow"] <= BUDGET, stats["productsPerWindow"]
    buckets = app.state.read_buckets("acoProducts", list(range(8)))
    keys = {k for b in buckets for k in b.records}
    assert len(keys) >= 4 * BUDGET  # the load needs several windows
    assert len(stats["productsPerWindow"]) >= -(-len(keys) // BUDGET)
    assert set(s.held("acoProducts")) == keys  # nothing lost
    assert stats["accepted"]["products"] == len(keys)  # nothing sent twice
    assert {r.status for b in buckets for r in b.records.values()} == {"sent"}
    for feed in ACO_FEED_NAMES:
        states = app.state.read_buckets(feed, list(range(8)))
        assert {r.status for b in states for r in b.records.values()} == {"sent"}, feed


def test_e2e_aco_export_takes_no_more_parts_once_the_budget_is_out(aco_stack) -> None:
    """One invocation with several product parts and a budget of one batch: the first
    part sends what the budget allows, the others go back to the queue unsent (no
    request for them reaches ACO)."""
    from catalog_sync.app import run_export_message
    from catalog_sync.sync.snapshot import ExportMessage

    # a few items a message (EXPORT_MESSAGE_ITEMS=3), so the invocation has several
    env = {"ACO_MAX_PRODUCTS_PER_MINUTE": "4", "ACO_BATCH_SIZE": "4", "EXPORT_MESSAGE_ITEMS": "3"}
    s = aco_stack(SMALL, **env)
    s.runner.reindex({"action": "resync", "feed": "acoProductMetadata"})
    s.runner.drain()
    app = s.runner.app
    _budgeted(s.runner, window=3600)  # one window for the whole test
    result = s.runner.reindex({"action": "resync", "feed": "acoProducts"})
    run = result["runs"][0]
    sqs, url = app.client("sqs"), app.settings.export_queue_url
    messages = []
    while queue_depth(sqs, url):  # all of them (10 at most a receive)
        resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        for m in resp.get("Messages", []):
            messages.append(ExportMessage.model_validate_json(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert len(messages) == run["messages_enqueued"] >= 3
    before = len(s.requests())
    results = [run_export_message(m, app) for m in messages]
    counts = [r.counts for r in results]
    paced = next(i for i, r in enumerate(results) if r.paced)  # the part it ran out in
    assert sum(c.get("sent", 0) for c in counts) == 4  # the budget, no more
    assert not any(c.get("retry") for c in counts)  # kept back is not an outcome
    assert paced < len(counts) - 1
    assert counts[paced + 1 :] == [{"paced": 1}] * (len(counts) - paced - 1)
    assert sum(n for _, _, n in s.requests()[before:]) == 4
    assert queue_depth(sqs, url) == len(messages) - paced  # back: that part's rest, the others
    done = {p.unit for p in app.state.list_part_results("acoProducts", run["run_id"])}

    def units(some: list[ExportMessage]) -> set[tuple[int, int]]:
        return {(b, m.slices[b].index if b in m.slices else 0) for m in some for b in m.buckets}

    # every bucket (or slice) before the one it ran out in has its result; none after;
    # of the message it ran out in, only those sent whole before the budget was out
    assert units(messages[:paced]) <= done <= units(messages[: paced + 1])
    assert done - units(messages[:paced]) < units(messages[paced : paced + 1])
