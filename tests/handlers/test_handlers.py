"""The Lambda handlers, called with the sample events in `events/` (what
`sam local invoke -e events/<file>` passes), against a local stack."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from devstack.local import LambdaContextStub
from tests.e2e.conftest import FIXTURES

EVENTS = Path(__file__).resolve().parents[2] / "events"
SMALL = FIXTURES / "catalogs" / "small.csv"


def event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def stack(make_stack):
    return make_stack(SMALL)


def test_handler_reindex_scheduled_event_runs_the_hourly_sync(stack):
    result = stack.runner.reindex(event("reindex_schedule.json"))
    run = result["runs"][0]
    assert run["kind"] == "sync" and run["status"] == "completed"
    assert run["counts"]["new"] == 11


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("reindex_resync.json", "resync"),
        ("reindex_sync.json", "sync"),
        ("reindex_resync_by_ids.json", "resync-by-ids"),
        ("reindex_resend.json", "resend"),
    ],
)
def test_handler_reindex_sample_events(stack, name: str, kind: str):
    result = stack.runner.reindex(event(name))
    assert [r["kind"] for r in result["runs"]] == [kind]
    assert result["runs"][0]["status"] == "completed"


def test_handler_reindex_by_ids_queues_only_that_sku(stack):
    stack.resync()
    result = stack.runner.reindex(event("reindex_resync_by_ids.json"))
    assert result["runs"][0]["counts"]["requeued"] == 1
    assert result["runs"][0]["counts"]["deleted"] == 0


def test_handler_reindex_no_reindex_event_works_without_a_source(stack):
    stack.resync()
    stack.runner.app.settings = stack.runner.app.settings.model_copy(
        update={"catalog_source": "/nonexistent/catalog.csv"}
    )
    stack.runner.env.pop("CATALOG_SOURCE", None)
    result = stack.runner.reindex(event("reindex_resync_no_reindex.json"))
    assert result["runs"][0]["counts"]["requeued"] == 11


def test_handler_export_sample_event_reports_partial_failures(stack):
    sqs_event = event("export_sqs.json")
    good = sqs_event["Records"][0]
    bad = copy.deepcopy(good)
    bad["messageId"] = "not-a-message"
    bad["body"] = '{"feed": "products"}'  # missing fields
    sqs_event["Records"] = [good, bad]

    with stack.runner._installed():
        result = stack.runner._export.handler(sqs_event, LambdaContextStub("export"))

    assert result == {"batchItemFailures": [{"itemIdentifier": "not-a-message"}]}


class ShortContext(LambdaContextStub):
    """An invocation with 100 s left: less than the hand-on margin (120 s)."""

    def get_remaining_time_in_millis(self) -> int:
        return 100_000


def test_handler_reindex_budget_comes_from_the_context_and_continuations_from_sqs(stack):
    """Without RUN_TIME_BUDGET_SECONDS the budget is the context's remaining time less
    the margin: here nothing, so the run hands on after the read; the follow-up
    invocation (an SQS event of the continuation queue, 900 s left) finishes it."""
    with stack.runner._installed():
        first = stack.runner._reindex.handler(event("reindex_sync.json"), ShortContext("r"))
    [run] = first["runs"]
    assert run["status"] == "running" and run["continues"] and run["continuations"] == 1
    assert stack.runner.continue_runs() == 1
    record = stack.runner.app.state.get_run("products", run["run_id"])
    assert record is not None and record.status == "completed"
    assert record.counts["new"] == 11


def test_handler_reindex_continuation_sample_event(stack):
    """The sample continuation event (a run this stack never had) is dropped, and a
    record that is not a continuation is reported as a failed batch item."""
    sqs_event = event("reindex_continuation_sqs.json")
    bad = copy.deepcopy(sqs_event["Records"][0])
    bad["messageId"] = "not-a-continuation"
    bad["body"] = '{"run_id": "x"}'
    sqs_event["Records"].append(bad)
    with stack.runner._installed():
        result = stack.runner._reindex.handler(sqs_event, LambdaContextStub("reindex"))
    assert result == {"batchItemFailures": [{"itemIdentifier": "not-a-continuation"}]}
