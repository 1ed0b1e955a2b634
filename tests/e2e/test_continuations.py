"""Runs across invocations (issue 10): a run whose invocation budget is spent hands
itself on through the continuation queue, and ends as one invocation would have.

The whole local stack: moto over HTTP (S3, DynamoDB, SQS with the continuation
queue), the real handlers through the local runner (which delivers continuation
messages to the reindex handler in SQS events), the real feed receiver or the ACO
emulator. `RUN_TIME_BUDGET_SECONDS=0` makes every invocation hand on after one step
(the read, or one chunk of buckets): deterministic, no timing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from catalog_sync.feeds.aco import ACO_FEED_NAMES
from catalog_sync.sync.snapshot import Manifest, read_part
from devstack.local import LocalRunner, LocalStack
from devstack.localaws import ResourceNames
from devstack.synth import edit, generate
from tests.e2e.faults import CrashPlan, install_crashes
from tests.e2e.seals import drop_seals

VIEWS = "default:base,fr:base,de:base"
CS_FEEDS = ("products", "prices", "categories")  # one aggregate feed among them
CS_ENV = {"FEEDS": ",".join(CS_FEEDS), "STORE_VIEWS": VIEWS, "STATE_BUCKETS": "20"}
ACO_ENV = {
    "STORE_VIEWS": VIEWS,
    "STORE_VIEW_LOCALES": "default:en-US,fr:fr-FR,de:de-DE",
    "WEBSITE_CURRENCIES": "base:USD",
    "EXPORT_REQUEUE_DELAY_SECONDS": "0",
    "ACO_MAX_REQUESTS_PER_SECOND": "50",
    "STATE_BUCKETS": "20",  # 5 chunks of 4: a resync in 5 continuations
}
TARGETS = {
    "commerce-services": (CS_FEEDS, CS_ENV, "products"),
    "aco": (ACO_FEED_NAMES, ACO_ENV, "acoProducts"),
}
EVERY_STEP = {"RUN_TIME_BUDGET_SECONDS": "0"}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "catalog.csv"
    generate(path, 240, seed=11)
    return path


_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?")


class Local:
    """A fresh local stack of a target and a runner over it."""

    def __init__(self, endpoint: str, source: Path, target: str, env: dict[str, str]) -> None:
        self.target = target
        self.stack = LocalStack(
            aws_endpoint=endpoint, names=ResourceNames.unique(), source=str(source), target=target
        ).start()
        self.env = {**self.stack.env, **env}
        self.runner = LocalRunner(self.env)

    def run(self, **event: Any) -> dict[str, Any]:
        result = self.runner.reindex(event)
        self.runner.drain()
        return result

    def held(self, feeds: tuple[str, ...]) -> dict[str, list[str]]:
        """What the SaaS side holds per feed (modifiedAt aside), order-free."""
        if self.target == "aco":
            return {k: sorted(map(repr, v)) for k, v in self.stack.aco.state().items()}
        assert self.stack.receiver is not None
        env_id = self.env["SAAS_ENVIRONMENT_ID"]
        return {
            feed: sorted(
                repr({k: v for k, v in item.items() if k != "modifiedAt"})
                for item in self.stack.receiver.state(feed, env_id)
            )
            for feed in feeds
        }

    def content(self, feeds: tuple[str, ...]) -> dict[str, Any]:
        """Per feed: every state record (run ids and times aside: they differ between
        stacks), the latest snapshot's items by bucket (their build time aside), and the last
        run's issues (the times in them aside: an incremental read names its watermark, the
        time of the stack's own last run)."""
        app = self.runner.app
        state, blobs = app.state, app.blobs
        out: dict[str, Any] = {}
        for feed in feeds:
            meta = state.read_meta(feed)
            assert meta is not None and meta.latest_manifest
            records = {
                key: (r.hash, r.status.value, r.deleted, r.sent_hash, r.reason, r.sent_deleted)
                for b in state.read_buckets(feed, list(range(meta.buckets)))
                for key, r in b.records.items()
            }
            manifest = Manifest.model_validate_json(blobs.get_bytes(meta.latest_manifest))
            parts = {}
            for part in manifest.parts:
                if part.key:
                    with blobs.open(part.key) as stream:
                        parts[part.bucket] = sorted(
                            (key, h, _without_time(body)) for key, h, body in read_part(stream)
                        )
            [run] = state.list_runs(feed, limit=1)
            issues = [{**i, "message": _TIME.sub("<time>", i["message"])} for i in run.issues]
            out[feed] = {"state": records, "parts": parts, "issues": issues}
        return out

    def staged(self) -> list[str]:
        """What runs staged for their continuations (gone once they complete)."""
        return list(self.runner.app.blobs.list_keys("continuations/"))

    def stop(self) -> None:
        self.stack.stop()


@pytest.fixture
def local(moto_endpoint: str, catalog: Path) -> Iterator[Any]:
    made: list[Local] = []

    def make(target: str, source: Path = catalog, **env: str) -> Local:
        made.append(Local(moto_endpoint, source, target, {**TARGETS[target][1], **env}))
        return made[-1]

    yield make
    for s in made:
        s.stop()


def _without_time(body: bytes) -> str:
    """An item's JSON without `modifiedAt` (the time of the run that built it)."""
    item = orjson.loads(body)
    item.pop("modifiedAt", None)
    return repr(item)


def _counts(result: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Every count, how much was built too: a run continued across invocations
    publishes the record fingerprints one invocation would (`sync.fingerprints`)."""
    return {r["feed"]: dict(r["counts"]) for r in result["runs"]}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_e2e_a_run_in_many_continuations_ends_as_one_invocation(local: Any, target: str) -> None:
    feeds, _, resync_feed = TARGETS[target]
    whole = local(target)
    steps = local(target, **EVERY_STEP)

    one = whole.run(action="sync")
    many = steps.run(action="sync")

    assert "invocations" not in one and all(r["continuations"] == 0 for r in one["runs"])
    assert many["invocations"] >= 6
    assert {r["status"] for r in many["runs"]} == {"completed"}
    assert all(r["continuations"] >= 1 for r in many["runs"])
    assert _counts(many) == _counts(one)
    assert steps.content(feeds) == whole.content(feeds)
    assert steps.held(feeds) == whole.held(feeds)
    assert all(steps.held(feeds).values())
    assert steps.staged() == []  # the run's staged buckets and carries are gone

    drop_seals(whole.runner)  # both next syncs go the per-record path (tests/e2e/seals.py)
    one, many = whole.run(action="sync"), steps.run(action="sync")  # the next hourly sync
    assert _counts(many) == _counts(one)  # it builds no more than after one invocation
    assert any(r["counts"]["records_unchanged"] for r in many["runs"])

    one = whole.run(action="resync", feed=resync_feed)
    many = steps.run(action="resync", feed=resync_feed)

    [run] = many["runs"]
    assert run["status"] == "completed" and run["continuations"] >= 5
    assert run["counts"]["requeued"] > 0
    assert _counts(many) == _counts(one)
    assert steps.content(feeds) == whole.content(feeds)
    assert steps.held(feeds) == whole.held(feeds)


def test_e2e_a_crash_in_a_continuation_is_retried_and_converges(local: Any) -> None:
    feeds = CS_FEEDS
    whole = local("commerce-services")
    steps = local("commerce-services", **EVERY_STEP)
    whole.run(action="sync")
    plan = install_crashes(steps.runner.app, CrashPlan())

    first = steps.runner.reindex({"action": "sync"}, follow=False)  # the read, then hands on
    assert [r["continues"] for r in first["runs"]] == [True] * len(feeds)
    plan.arm("state", 6, "before")  # a bucket's state write in the second continuation
    assert steps.runner.continue_runs(limit=2) == 2
    run_id = first["runs"][0]["run_id"]
    crashed = steps.runner.app.state.get_run("products", run_id)
    assert crashed is not None and crashed.status == "running"
    assert crashed.error is not None and "crash" in crashed.error and "retried" in crashed.error
    plan.arm("blobs", 3, "after")  # a part written, its bucket's state not
    plan.arm("state", 30, "after")  # a bucket written, the continuation never learns it
    steps.runner.continue_runs()
    steps.runner.drain()

    assert len(plan.fired) == 3, plan.fired
    for feed in feeds:
        run = steps.runner.app.state.get_run(feed, run_id)
        assert run is not None and run.status == "completed", (feed, run)
    assert steps.content(feeds) == whole.content(feeds)
    assert steps.held(feeds) == whole.held(feeds)
    assert steps.staged() == []


def test_e2e_deletions_reach_the_saas_side_with_the_last_continuation_only(
    local: Any, catalog: Path, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.csv"
    path.write_bytes(catalog.read_bytes())
    s = local("commerce-services", path, FEEDS="products", **EVERY_STEP)
    s.run(action="sync")
    before = s.held(("products",))["products"]
    smaller = tmp_path / "smaller.csv"
    removed = edit(path, smaller, remove=12, seed=3).removed
    assert removed
    path.write_bytes(smaller.read_bytes())

    first = s.runner.reindex({"action": "sync"}, follow=False)
    run_id = first["runs"][0]["run_id"]
    steps = 1
    while s.runner.continue_runs(limit=1):
        steps += 1
        s.runner.drain()  # exports between continuations: nothing of this run yet
        run = s.runner.app.state.get_run("products", run_id)
        assert run is not None
        if run.status == "running":
            assert s.held(("products",))["products"] == before
    assert steps >= 6
    s.runner.drain()
    after = s.held(("products",))["products"]
    assert len(after) < len(before)
    gone = {sku.lower() for sku in removed}
    assert not any(f"'sku': '{sku}'" in item.lower() for item in after for sku in gone)


def test_e2e_the_watermark_moves_with_the_last_continuation_only(local: Any, catalog: Path) -> None:
    """A REST read (incremental source): the feed meta's watermark and last full read
    stay where they were while the run continues, and move when it completes."""
    from devstack.magento_server import MagentoApiServer

    token = "magento-token-0123456789"
    secret = f"magento-token-{uuid.uuid4().hex[:8]}"
    with MagentoApiServer(catalog, token=token, store_views=("default", "fr", "de")) as shop:
        s = local(
            "commerce-services",
            FEEDS="products",
            CATALOG_SOURCE=shop.url,
            MAGENTO_TOKEN_SECRET_ID=secret,
            **EVERY_STEP,
        )
        s.runner.app.client("secretsmanager").create_secret(Name=secret, SecretString=token)
        state = s.runner.app.state

        first = s.runner.reindex({"action": "sync"}, follow=False)
        run_id = first["runs"][0]["run_id"]
        marks = []
        while s.runner.continue_runs(limit=1):
            run = state.get_run("products", run_id)
            meta = state.read_meta("products")
            assert run is not None
            marks.append((run.status, meta.source_watermark if meta else None))
        assert len(marks) >= 5
        assert all(mark is None for status, mark in marks if status == "running")
        assert marks[-1][0] == "completed" and marks[-1][1] is not None
        meta = state.read_meta("products")
        assert meta is not None and meta.last_full_read is not None


def test_e2e_a_duplicate_or_stale_continuation_is_dropped(local: Any) -> None:
    """SQS delivers at least once: a continuation whose run has moved on (a later
    checkpoint, or the run completed) changes nothing."""
    s = local("commerce-services", FEEDS="products", **EVERY_STEP)
    first = s.runner.reindex({"action": "resync", "feed": "products"}, follow=False)
    run_id = first["runs"][0]["run_id"]
    url = s.env["CONTINUE_QUEUE_URL"]
    sqs = s.runner.app.client("sqs")
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
    assert s.runner.continue_runs(limit=2) == 2  # continuations 1 and 2
    sqs.send_message(QueueUrl=url, MessageBody=message["Body"])  # 1 again: stale
    s.runner.continue_runs()
    s.runner.drain()
    state = s.runner.app.state
    run = state.get_run("products", run_id)
    assert run is not None and run.status == "completed" and run.error is None
    held = s.held(("products",))
    sent = s.stack.receiver.stats()["items"]["accepted"]
    sqs.send_message(QueueUrl=url, MessageBody=message["Body"])  # after the end
    assert s.runner.continue_runs() == 1
    s.runner.drain()
    assert state.get_run("products", run_id) == run
    assert s.held(("products",)) == held
    assert s.stack.receiver.stats()["items"]["accepted"] == sent


def test_e2e_a_run_whose_lease_was_taken_meanwhile_fails_clearly(local: Any) -> None:
    """The lease expired between two invocations and another run took it: the
    continuation fails its run (it does not write under another run's lease)."""
    s = local("commerce-services", FEEDS="products", **EVERY_STEP)
    first = s.runner.reindex({"action": "resync", "feed": "products"}, follow=False)
    run_id = first["runs"][0]["run_id"]
    state = s.runner.app.state
    later = datetime.now(UTC) + timedelta(hours=2)  # the lease has expired by then
    state.acquire_lease("products", "another-run", later, 900)

    assert s.runner.continue_runs() == 1
    run = state.get_run("products", run_id)
    assert run is not None and run.status == "failed"
    assert run.error is not None and "lost its lease" in run.error and "another-run" in run.error
    assert state.read_meta("products") is None  # nothing of it was finished


def test_e2e_the_deletion_guard_holds_the_same_across_continuations(
    local: Any, catalog: Path, tmp_path: Path
) -> None:
    """The guard's first pass (its tally, the buckets it deferred) is carried from
    invocation to invocation: a mass deletion is held exactly as in one invocation,
    and a small one is applied the same."""
    smaller = tmp_path / "smaller.csv"
    edit(catalog, smaller, remove=60, seed=5, only_standalone=False)
    runs: dict[str, Any] = {}
    for name, env in (("whole", {}), ("steps", EVERY_STEP)):
        path = tmp_path / f"{name}.csv"
        path.write_bytes(catalog.read_bytes())
        s = local("commerce-services", path, FEEDS="products", **env)
        s.run(action="sync")
        path.write_bytes(smaller.read_bytes())
        runs[name] = (s, s.run(action="sync"))
    (whole, one), (steps, many) = runs["whole"], runs["steps"]
    assert many["invocations"] >= 6
    [run] = many["runs"]
    assert run["status"] == "held" == one["runs"][0]["status"]
    assert run["counts"]["deletions_held"] > 0 and run["counts"]["deleted"] == 0
    assert _counts(many) == _counts(one)
    assert steps.content(("products",)) == whole.content(("products",))
    assert steps.held(("products",)) == whole.held(("products",))
    assert steps.staged() == []
