"""A run's lease between its invocations (issue 10): a continuation that crashes is
delivered again by SQS after the queue's visibility timeout (960 s), later than
`LEASE_SECONDS` (900 s). The lease of a run in continuations outlives that
redelivery, so no scheduled run takes it in the gap and the retry finishes the run.

The whole local stack (moto over HTTP, the real handlers and feed receiver); time is
the App's clock, set by the test (the local runner delivers a failed message again
at once: the test moves the clock as SQS's visibility timeout would).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog_sync.app import run_reindex_event
from catalog_sync.observability import metrics
from catalog_sync.settings import Settings
from catalog_sync.sync.lease import handed_on_ttl
from catalog_sync.sync.state import Status
from devstack.synth import edit, generate
from tests.e2e.faults import CrashPlan, install_crashes, state_records
from tests.e2e.test_continuations import EVERY_STEP, TARGETS, Local

FEED = ("products",)
DEFAULTS = Settings.model_fields
VISIBILITY = DEFAULTS["continue_visibility_seconds"].default  # as template.yaml sets it
LEASE = DEFAULTS["lease_seconds"].default


class SetClock:
    """The App's clock, moved only by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "catalog.csv"
    generate(path, 120, seed=7)
    return path


@pytest.fixture
def local(moto_endpoint: str) -> Iterator[Any]:
    made: list[Local] = []

    def make(source: Path, **env: str) -> Local:
        target = "commerce-services"
        made.append(Local(moto_endpoint, source, target, {**TARGETS[target][1], **env}))
        return made[-1]

    yield make
    for s in made:
        s.stop()


def test_e2e_a_crashed_continuation_keeps_its_lease_until_sqs_delivers_it_again(
    local: Any, catalog: Path
) -> None:
    assert VISIBILITY > LEASE  # the gap this closes
    whole = local(catalog, FEEDS="products")
    whole.run(action="sync")
    s = local(catalog, FEEDS="products", **EVERY_STEP)
    clock = SetClock()
    s.runner.app.clock = clock
    s.run(action="sync")
    waiting = _make_one_wait(s)  # what the resend would send: the run sends it
    clock.now += timedelta(hours=1)
    plan = install_crashes(s.runner.app, CrashPlan())

    first = s.runner.reindex({"action": "sync"}, follow=False)  # the read, then hands on
    run_id = first["runs"][0]["run_id"]
    received = clock.now  # SQS delivers the continuation at once
    plan.arm("state", 1)  # its first bucket write crashes: the message comes back
    assert s.runner.continue_runs(limit=1) == 1
    assert len(plan.fired) == 1
    state = s.runner.app.state
    crashed = state.get_run("products", run_id)
    assert crashed is not None and crashed.status == "running" and "retried" in str(crashed.error)

    # past LEASE_SECONDS, before the visibility timeout: the schedules meet the lease
    clock.now = received + timedelta(seconds=LEASE + 30)
    metrics.flush()
    sync = run_reindex_event({"action": "sync"}, s.runner.app)
    resend = run_reindex_event({"action": "resend"}, s.runner.app)
    assert [r["status"] for r in sync["runs"] + resend["runs"]] == ["skipped", "skipped"]
    assert run_id in sync["runs"][0]["reason"]
    assert metrics.snapshot()["products"]["RunsSkipped"] == 1  # the sync's; the resend's work
    metrics.flush()  # is done by the run
    assert state.list_runs("products", limit=1)[0].run_id == run_id  # no other run started

    # SQS delivers the message again (the visibility timeout, and the poll, have passed)
    clock.now = received + timedelta(seconds=VISIBILITY + 60)
    assert s.runner.continue_runs() >= 1
    s.runner.drain()
    run = state.get_run("products", run_id)
    assert run is not None and run.status == "completed", run
    assert s.content(FEED) == whole.content(FEED)
    assert s.held(FEED) == whole.held(FEED)
    assert s.staged() == []
    assert state_records(s.runner.app)[waiting].status is Status.SENT
    # the lease is free again: the next sync runs
    clock.now += timedelta(hours=1)
    assert s.run(action="sync")["runs"][0]["status"] == "completed"


def _make_one_wait(s: Any) -> str:
    """Put one sent item back to `retry` (its export ran out of tries); its key."""
    state = s.runner.app.state
    for bucket in state.read_buckets("products", list(range(20))):
        for key, rec in bucket.records.items():
            rec.status = Status.RETRY
            state.write_bucket(bucket)
            return key
    raise AssertionError("no state")


def test_the_lease_between_continuations_outlives_the_redelivery() -> None:
    assert handed_on_ttl(LEASE, VISIBILITY) > VISIBILITY
    assert handed_on_ttl(LEASE, 0) == LEASE  # never shorter than LEASE_SECONDS
    assert handed_on_ttl(3600, VISIBILITY) == 3600


def test_e2e_a_resend_does_not_continue_so_the_sync_meeting_it_runs(
    local: Any, catalog: Path
) -> None:
    """The sync waits for a resend holding the lease (`LEASE_WAIT_SECONDS`); a resend
    spread over continuations would outlast that wait and skip the sync, hour after
    hour. A resend reads no source: it is not handed on by `RUN_TIME_BUDGET_SECONDS`,
    only when its invocation's own time runs low."""
    s = local(catalog, FEEDS="products", LEASE_WAIT_SECONDS="4", **EVERY_STEP)
    s.run(action="sync")
    resend = s.runner.reindex({"action": "resend"}, follow=False)
    assert [(r["status"], r["continues"]) for r in resend["runs"]] == [("completed", False)]
    waited: list[float] = []
    s.runner.app.sleep = waited.append
    metrics.flush()
    sync = run_reindex_event({"action": "sync"}, s.runner.app)
    assert sync["runs"][0]["status"] != "skipped" and waited == []
    assert "RunsSkipped" not in metrics.snapshot().get("products", {})
    s.runner.continue_runs()  # the sync itself continues (it reads the source)
    run = s.runner.app.state.get_run("products", sync["runs"][0]["run_id"])
    assert run is not None and run.status == "completed" and run.continuations >= 1


def test_e2e_a_continuation_redriven_after_a_later_run_fails_its_run(
    local: Any, catalog: Path, tmp_path: Path
) -> None:
    """A continuation that comes back after its lease expired (redriven from the DLQ
    late) finds that a later run came and went: it fails its run and writes nothing,
    instead of putting its old read over the later run's."""
    path = tmp_path / "catalog.csv"
    path.write_bytes(catalog.read_bytes())
    s = local(path, FEEDS="products", **EVERY_STEP)
    clock = SetClock()
    s.runner.app.clock = clock
    s.run(action="sync")
    clock.now += timedelta(hours=1)
    first = s.runner.reindex({"action": "sync"}, follow=False)
    old_run = first["runs"][0]["run_id"]
    url, sqs = s.env["CONTINUE_QUEUE_URL"], s.runner.app.client("sqs")
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])  # to the DLQ

    clock.now += timedelta(hours=2)  # its lease expired long ago
    edited = tmp_path / "edited.csv"
    edit(path, edited, change_prices=15, seed=4)
    path.write_bytes(edited.read_bytes())
    later = s.run(action="sync")
    assert later["runs"][0]["status"] == "completed"
    after_later = s.content(FEED), s.held(FEED)

    sqs.send_message(QueueUrl=url, MessageBody=message["Body"])  # redriven, late
    assert s.runner.continue_runs() == 1
    s.runner.drain()
    run = s.runner.app.state.get_run("products", old_run)
    assert run is not None and run.status == "failed"
    assert "lost its lease" in str(run.error) and later["runs"][0]["run_id"] in str(run.error)
    assert (s.content(FEED), s.held(FEED)) == after_later
    # the lease is free: the next sync runs, even one of the same instant as the later
    # run whose id sorts before it (a frozen clock; the run's start time tells)
    s.runner.app.new_id = lambda: "0" * 32
    assert s.run(action="sync")["runs"][0]["status"] == "completed"
