"""The reindex handler (issue 10): a refused or mistaken request is a result, not a
function error; the hourly sync and the 10-minute resend never starve each other;
a skipped or held run is a metric."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog_sync.app import run_reindex_event
from catalog_sync.observability import metrics
from catalog_sync.sync.runs import RunRecord
from tests.e2e.conftest import FIXTURES

SMALL = FIXTURES / "catalogs" / "small.csv"


@pytest.fixture
def stack(make_stack):
    return make_stack(SMALL, CATALOG_SOURCE_ALLOW="")  # as deployed: no local allowance


@pytest.fixture
def published() -> Iterator[None]:
    """The invocation's metrics start empty; `metrics.snapshot()` is what the handler
    would publish."""
    metrics.flush()
    yield
    metrics.flush()


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"action": "resync", "feed": "nope"}, "unknown feed 'nope'"),
        ({"action": "resync", "feed": "acoProducts"}, "is not a feed of SAAS_TARGET"),
        (
            {"action": "resync", "feed": "products", "noReindex": True, "failedOnly": True},
            "choose one of",
        ),
        ({"action": "sync", "noReindex": True}, "only a resync takes these options"),
        ({"action": "resync"}, "a resync needs a feed"),
        (
            {"action": "resync", "feed": "products", "noReindex": True, "confirmDeletions": True},
            "--no-reindex reads no source",
        ),
        ({"action": "sync", "source": "s3://other-bucket/catalog.csv"}, "refused"),
        ({"action": "resync", "feed": "products", "continueResync": True}, "no resync of"),
    ],
)
def test_a_mistaken_request_is_refused_with_a_result(stack, event: dict, reason: str) -> None:
    result = stack.runner.reindex(event)  # the Lambda handler
    assert result["status"] == "refused" and result["runs"] == []
    assert reason in result["reason"]
    assert stack.runner.app.state.list_runs("products") == []


def test_a_resync_meeting_a_held_lease_is_refused_with_a_result(stack) -> None:
    state, now = stack.runner.app.state, stack.runner.app.clock()
    state.acquire_lease("products", "20261202T000000000Z-other", now, 600)
    result = stack.runner.reindex({"action": "resync", "feed": "products"})
    assert result["status"] == "refused"
    assert "already in progress: lease held by 20261202T000000000Z-other" in result["reason"]


def _hold_lease(stack: Any, kind: str) -> RunRecord:
    state, now = stack.runner.app.state, stack.runner.app.clock()
    run = RunRecord(
        feed="products", run_id=f"20261202T000000000Z-{kind}", kind=kind, started_at=now.isoformat()
    )
    state.acquire_lease("products", run.run_id, now, 600)
    state.put_run(run)
    return run


def _sync(stack: Any) -> dict[str, Any]:
    """The scheduled sync, through the function the handler runs (its metrics read
    before the handler would flush them)."""
    return run_reindex_event({"action": "sync"}, stack.runner.app)


def test_the_sync_waits_for_a_resend_holding_the_lease(stack, published) -> None:
    stack.runner.app.settings = stack.runner.app.settings.model_copy(update={"feeds": "products"})
    resend = _hold_lease(stack, "resend")
    state = stack.runner.app.state
    waits: list[float] = []

    def resend_finishes(seconds: float) -> None:  # the resend ends while the sync waits
        waits.append(seconds)
        if len(waits) == 2:
            state.put_run(resend.model_copy(update={"status": "completed"}))
            state.release_lease("products", resend.run_id)

    stack.runner.app.sleep = resend_finishes
    result = _sync(stack)

    [run] = result["runs"]
    assert run["status"] == "completed" and run["counts"]["new"] == 11
    assert len(waits) == 2
    assert "RunsSkipped" not in metrics.snapshot().get("products", {})


def test_a_sync_that_cannot_get_the_lease_is_skipped_and_counted(stack, published) -> None:
    stack.runner.app.settings = stack.runner.app.settings.model_copy(
        update={"feeds": "products", "lease_wait_seconds": 4}
    )
    _hold_lease(stack, "resync")  # a resync: the sync does not wait for it
    stack.runner.app.sleep = lambda _s: pytest.fail("a sync waits only for a resend")
    result = _sync(stack)
    assert result["runs"][0]["status"] == "skipped"
    seen = metrics.snapshot()
    assert seen["products"]["RunsSkipped"] == 1 and seen[None]["RunsSkipped"] == 1


def test_a_resend_that_does_not_end_skips_the_sync_after_the_wait(stack, published) -> None:
    stack.runner.app.settings = stack.runner.app.settings.model_copy(
        update={"feeds": "products", "lease_wait_seconds": 5}
    )
    _hold_lease(stack, "resend")
    waited: list[float] = []
    stack.runner.app.sleep = waited.append
    result = _sync(stack)
    assert result["runs"][0]["status"] == "skipped"
    assert sum(waited) == 5
    assert metrics.snapshot()["products"]["RunsSkipped"] == 1


def test_a_resend_meeting_the_sync_steps_aside_uncounted(stack, published) -> None:
    _hold_lease(stack, "sync")
    result = run_reindex_event({"action": "resend"}, stack.runner.app)
    assert result["runs"][0]["status"] == "skipped"
    assert "sends the waiting items itself" in result["runs"][0]["reason"]
    assert "RunsSkipped" not in metrics.snapshot().get("products", {})


def test_a_held_run_is_a_metric_the_alarm_sees(stack, published, tmp_path: Path) -> None:
    stack.sync()
    metrics.flush()
    empty = tmp_path / "header-only.csv"
    empty.write_text(SMALL.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    stack.runner.app.settings = stack.runner.app.settings.model_copy(
        update={"catalog_source_allow": str(tmp_path)}
    )
    result = run_reindex_event({"action": "sync", "source": str(empty)}, stack.runner.app)
    held = [r["feed"] for r in result["runs"] if r["status"] == "held"]
    assert "products" in held
    seen = metrics.snapshot()
    assert seen["products"]["RunsHeld"] == 1
    # the HeldRunsAlarm watches RunsHeld with the service dimension only: the total
    assert seen[None]["RunsHeld"] == len(held)
