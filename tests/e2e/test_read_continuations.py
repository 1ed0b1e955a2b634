"""The read itself continues across invocations (issue 10): a CSV read stops after
pass 1 and after partitions of pass 2, a REST read at a page boundary; the follow-up
invocation goes on where it stopped, and the run ends as one invocation would have.

The whole local stack (moto over HTTP, the real handlers through the local runner,
the feed receiver or the ACO emulator; the REST source is the Magento emulator over
HTTP). `RUN_TIME_BUDGET_SECONDS=0` hands on after every step: pass 1, each chunk of
partitions, each page. The runs are followed one invocation at a time, and every
carry is looked at: the read must have handed on at least 5 times.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog_sync.feeds.registry import get_feed
from catalog_sync.sync.continuation import Budget, carry_key, load_carry
from devstack.magento_server import MagentoApiServer
from tests.e2e.faults import CrashPlan, install_crashes
from tests.e2e.seals import drop_seals
from tests.e2e.test_continuations import EVERY_STEP, TARGETS, Local

# 11 partitions of the synthetic catalog's ~330 kB, built two at a time
SMALL_PARTS = {"CSV_PARTITION_BYTES": "32768", "REINDEX_WORKERS": "2"}
TOKEN = "magento-token-0123456789"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from devstack.synth import generate

    path = tmp_path_factory.mktemp("synth-read") / "catalog.csv"
    generate(path, 240, seed=11)
    return path


@pytest.fixture
def local(moto_endpoint: str, catalog: Path) -> Iterator[Any]:
    made: list[Local] = []

    def make(target: str, shop: str | None = None, **env: str) -> Local:
        secret = f"magento-token-{uuid.uuid4().hex[:8]}"
        if shop is not None:  # the REST source: the Magento emulator
            env = {**env, "CATALOG_SOURCE": shop, "MAGENTO_TOKEN_SECRET_ID": secret}
        made.append(Local(moto_endpoint, catalog, target, {**TARGETS[target][1], **env}))
        if shop is not None:
            made[-1].runner.app.client("secretsmanager").create_secret(
                Name=secret, SecretString=TOKEN
            )
        return made[-1]

    yield make
    for s in made:
        s.stop()


def stepped(s: Local, **event: Any) -> tuple[dict[str, dict[str, Any]], int]:
    """Run `event` one invocation at a time to its end; the runs by feed as they
    ended, and how many hand-ons happened during the read (their carries say so)."""
    first = s.runner.reindex(event, follow=False)
    run_id, feeds = first["runs"][0]["run_id"], [r["feed"] for r in first["runs"]]
    state, blobs = s.runner.app.state, s.runner.app.blobs
    in_read, sequence = 0, 0
    while True:
        run = state.get_run(feeds[0], run_id)
        assert run is not None
        if run.continuations > sequence:
            sequence = run.continuations
            carry = load_carry(blobs, carry_key(run_id, sequence))
            in_read += carry.read is not None
        if not s.runner.continue_runs(limit=1):
            break
    s.runner.drain()
    runs = {f: state.get_run(f, run_id) for f in feeds}
    return {f: r.model_dump(mode="json") for f, r in runs.items() if r is not None}, in_read


def whole_runs(s: Local, **event: Any) -> dict[str, dict[str, Any]]:
    """The runs of `event`, followed to their end, by feed."""
    result = s.run(**event)
    return {r["feed"]: r for r in result["runs"]}


def per_record_sync(s: Local) -> dict[str, dict[str, Any]]:
    """The hourly sync by the per-record path (fingerprints), as a continued run's is."""
    drop_seals(s.runner)
    return whole_runs(s, action="sync")


def counts(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    return {feed: run["counts"] for feed, run in runs.items()}


def same_end(steps: Local, whole: Local, feeds: tuple[str, ...]) -> None:
    assert steps.content(feeds) == whole.content(feeds)
    assert steps.held(feeds) == whole.held(feeds)
    assert all(steps.held(feeds).values())
    assert steps.staged() == []  # staged partitions, segments and carries are gone


def built_nothing(runs: dict[str, dict[str, Any]], like: dict[str, dict[str, Any]]) -> None:
    """An hourly sync after the run builds only what it would after a run in one
    invocation (`like`): the records whose fingerprint is not kept (built with a
    warning, to be reported again); the aggregate feeds, which keep none, build theirs."""
    assert counts(runs) == counts(like), repr(
        {f: sorted(set(c.items()) ^ set(counts(like)[f].items())) for f, c in counts(runs).items()}
    )
    for feed, run in runs.items():
        if get_feed(feed).aggregate:
            continue
        c = run["counts"]
        assert c["records_unchanged"] >= 0.8 * c["records"] > 0, (feed, c)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_e2e_a_csv_read_in_many_continuations_ends_as_one_invocation(
    local: Any, target: str
) -> None:
    feeds, _, resync_feed = TARGETS[target]
    whole = local(target)
    steps = local(target, **EVERY_STEP, **SMALL_PARTS)

    one = whole_runs(whole, action="sync")
    many, in_read = stepped(steps, action="sync")
    assert in_read >= 5
    assert {r["status"] for r in many.values()} == {"completed"}
    assert counts(many) == counts(one)
    same_end(steps, whole, feeds)

    one = whole_runs(whole, action="resync", feed=resync_feed)
    many, in_read = stepped(steps, action="resync", feed=resync_feed)
    assert in_read >= 5 and many[resync_feed]["status"] == "completed"
    assert counts(many) == counts(one)
    same_end(steps, whole, feeds)

    hourly = whole_runs(steps, action="sync")  # the next hourly sync: nothing to build
    built_nothing(hourly, per_record_sync(whole))
    same_end(steps, whole, feeds)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_e2e_a_rest_read_in_many_continuations_ends_as_one_invocation(
    local: Any, catalog: Path, target: str
) -> None:
    feeds, _, resync_feed = TARGETS[target]
    pages = {"MAGENTO_PAGE_SIZE": "30"}  # 8 pages of the 240 products
    views = ("default", "fr", "de")
    with (
        MagentoApiServer(catalog, token=TOKEN, store_views=views) as shop_one,
        MagentoApiServer(catalog, token=TOKEN, store_views=views) as shop_many,
    ):
        whole = local(target, shop_one.url, **pages)
        steps = local(target, shop_many.url, **pages, **EVERY_STEP)

        one = whole_runs(whole, action="sync")
        many, in_read = stepped(steps, action="sync")
        assert in_read >= 5
        assert {r["status"] for r in many.values()} == {"completed"}
        assert counts(many) == counts(one)
        same_end(steps, whole, feeds)

        one = whole_runs(whole, action="resync", feed=resync_feed)
        many, in_read = stepped(steps, action="resync", feed=resync_feed)
        assert in_read >= 5
        assert counts(many) == counts(one)
        same_end(steps, whole, feeds)

        # the next hourly sync (incremental, from the watermark the runs moved)
        assert counts(whole_runs(steps, action="sync")) == counts(whole_runs(whole, action="sync"))
        same_end(steps, whole, feeds)


def test_e2e_a_pool_stops_handing_out_partitions_once_the_budget_is_spent(
    local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool of 2 workers hands out partitions as they ask; the budget is spent at
    the 4th progress of an invocation (pass 1 is one), in the middle of the pool's
    partitions: it hands out no more, the workers finish theirs, and the read goes
    on in the next invocation from the first partition not handed out. The run ends
    as one invocation's."""
    feeds = TARGETS["commerce-services"][0]
    made: weakref.WeakKeyDictionary[Budget, int] = weakref.WeakKeyDictionary()

    def progress(self: Budget) -> None:
        self.progressed = True
        made[self] = made.get(self, 0) + 1

    def spent(self: Budget) -> bool:
        return made.get(self, 0) >= 4

    whole = local("commerce-services")
    steps = local("commerce-services", RUN_TIME_BUDGET_SECONDS="3600", **SMALL_PARTS)
    one = whole_runs(whole, action="sync")
    monkeypatch.setattr(Budget, "progress", progress)
    monkeypatch.setattr(Budget, "spent", spent)
    first = steps.runner.reindex({"action": "sync"}, follow=False)
    run_id = first["runs"][0]["run_id"]
    state, blobs = steps.runner.app.state, steps.runner.app.blobs
    positions, partitions, sequence = [], 0, 0
    while True:
        run = state.get_run(feeds[0], run_id)
        assert run is not None
        if run.continuations > sequence:
            sequence = run.continuations
            read = load_carry(blobs, carry_key(run_id, sequence)).read
            if read is not None:
                positions.append(read.position)
                partitions = read.partitions
        if not steps.runner.continue_runs(limit=1):
            break
    steps.runner.drain()
    monkeypatch.undo()

    # the first invocation: partitions 0 and 1 handed out, then 2 and 3 as the
    # workers asked (after progress 2 and 3), none after progress 4; a continuation
    # starts with no progress: 5 partitions
    assert partitions >= 10
    assert positions == list(range(4, partitions, 5)), (positions, partitions)
    many = {f: state.get_run(f, run_id) for f in feeds}
    assert {f: r.counts if r else None for f, r in many.items()} == counts(one)
    assert {r.status if r else None for r in many.values()} == {"completed"}
    same_end(steps, whole, feeds)


def test_e2e_a_crash_in_a_read_continuation_is_retried_from_its_checkpoint(
    local: Any,
) -> None:
    """A continuation that crashes while it stages what it compiled is delivered
    again: it reads from its own checkpoint (the partitions it had not built), and
    the run converges to what one invocation gives."""
    feeds = TARGETS["commerce-services"][0]
    whole = local("commerce-services")
    steps = local("commerce-services", **EVERY_STEP, **{**SMALL_PARTS, "REINDEX_WORKERS": "1"})
    whole_runs(whole, action="sync")
    plan = install_crashes(steps.runner.app, CrashPlan())

    first = steps.runner.reindex({"action": "sync"}, follow=False)  # pass 1, then hands on
    run_id = first["runs"][0]["run_id"]
    assert steps.runner.continue_runs(limit=2) == 2  # partitions 0 and 1
    plan.arm("blobs", 2, "before")  # the next one's second staged object
    assert steps.runner.continue_runs(limit=1) == 1
    crashed = steps.runner.app.state.get_run("products", run_id)
    assert crashed is not None and crashed.status == "running" and crashed.continuations == 3
    assert crashed.error is not None and "crash" in crashed.error and "retried" in crashed.error
    steps.runner.continue_runs()
    steps.runner.drain()

    assert len(plan.fired) == 1, plan.fired
    for feed in feeds:
        run = steps.runner.app.state.get_run(feed, run_id)
        assert run is not None and run.status == "completed", (feed, run)
    same_end(steps, whole, feeds)
    built_nothing(whole_runs(steps, action="sync"), per_record_sync(whole))
