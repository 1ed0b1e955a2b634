"""`catalogctl` against a deployed stack (issue 10, item 4): the stack's outputs come
from moto's CloudFormation, the state from the moto stack; only the Lambda client is
a stub, which runs the real reindex handler in this process (moto cannot run our
code without Docker)."""

from __future__ import annotations

import io
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from catalogctl import running, status
from catalogctl.common import Target
from catalogctl.remote import INVOKE_CONFIG, RemoteRunner

SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "catalogs" / "small.csv"


class StubLambda:
    """`invoke` as Lambda would: the reindex handler, then (as the SQS event source
    mapping would) the exports. `gate` holds the call until the test opens it."""

    def __init__(self, stack: Any, gate: threading.Event | None = None) -> None:
        self.stack = stack
        self.gate = gate
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        event = json.loads(kwargs["Payload"])
        try:
            result = self.stack.runner.reindex(event)
        except Exception as exc:  # a function error, as Lambda reports it
            body = {"errorMessage": str(exc), "errorType": type(exc).__name__}
            return {"FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(body).encode())}
        if self.gate is not None:
            self.gate.wait(30)
        self.stack.runner.drain()
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(result).encode())}


def _deployed(stack: Any, lambda_client: Any) -> RemoteRunner:
    """A CloudFormation stack in moto whose outputs name the local stack's resources."""
    env = stack.env
    session = boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
    outputs = {
        "ReindexFunctionName": "catalog-sync-ReindexFunction",
        "StateTableName": env["STATE_TABLE"],
        "SnapshotBucketName": env["SNAPSHOT_BUCKET"],
        "ExportQueueUrl": env["EXPORT_QUEUE_URL"],
        "ExportDLQUrl": env["EXPORT_DLQ_URL"],
    }
    body = {
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    name = f"catalog-sync-{uuid.uuid4().hex[:8]}"
    cfn = session.client("cloudformation", endpoint_url=env["AWS_ENDPOINT_URL"])
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(body))
    return RemoteRunner(
        name, session=session, endpoint_url=env["AWS_ENDPOINT_URL"], lambda_client=lambda_client
    )


def test_the_invoke_outwaits_the_function_and_never_retries() -> None:
    assert INVOKE_CONFIG.read_timeout > 900
    assert INVOKE_CONFIG.retries == {"total_max_attempts": 1, "mode": "standard"}


def test_remote_resync_follows_the_run_and_its_exports(make_stack) -> None:
    stack = make_stack(SMALL)
    stub = StubLambda(stack)
    runner = _deployed(stack, stub)
    lines: list[str] = []
    result = running.do_remote_run(
        runner, {"action": "resync", "feed": "products"}, lines.append, poll=0.05
    )
    assert len(stub.calls) == 1  # one invocation, however long it takes
    assert stub.calls[0]["InvocationType"] == "RequestResponse"
    run = result["runs"][0]
    assert run["status"] == "completed"
    items = len(stack.held())
    assert items > 0
    assert result["export"]["sent"] == items and result["export"]["failed"] == 0
    text = "\n".join(lines)
    assert f"products: run {run['run_id']} (resync, completed)" in text
    assert f"exported {result['export']['parts']} part(s): {items:,} items sent" in text


def test_ctrl_c_leaves_the_run_going_and_says_how_to_follow_it(make_stack, monkeypatch) -> None:
    stack = make_stack(SMALL)
    gate = threading.Event()
    runner = _deployed(stack, StubLambda(stack, gate))
    lines: list[str] = []
    polls = {"n": 0}

    def sleep(_: float) -> None:
        raise AssertionError("not reached: the invoke thread is joined with a timeout")

    # Ctrl-C arrives while the invoke still waits (the gate is closed): the first run
    # record has been seen by then.
    original = runner.state

    def interrupting_state() -> Any:
        state = original()
        list_runs = state.list_runs

        def list_runs_then_interrupt(feed: str, limit: int = 10) -> Any:
            runs = list_runs(feed, limit)
            polls["n"] += 1
            if any(r.status == "completed" for r in runs) and polls["n"] > 12:
                raise KeyboardInterrupt
            return runs

        state.list_runs = list_runs_then_interrupt  # type: ignore[method-assign]
        return state

    runner.state = interrupting_state  # type: ignore[method-assign]
    with pytest.raises(SystemExit) as info:
        running.do_remote_run(
            runner, {"action": "resync", "feed": "products"}, lines.append, sleep=sleep, poll=0.05
        )
    assert info.value.code == 130
    run_id = stack.runner.app.state.list_runs("products", limit=1)[0].run_id
    assert f"catalogctl status --run {run_id} --follow" in lines[-1]
    assert "goes on" in lines[-1]
    gate.set()  # the "function" finishes on its own; the exports follow
    target = Target(local=False, stack="unused", region=None)
    follow_lines: list[str] = []
    monkeypatch.setattr(running, "runner_for", lambda _t: runner)
    runner.state = original  # type: ignore[method-assign]
    doc = running.do_follow(target, run_id, None, follow_lines.append, poll=0.05)
    assert doc["status"] == "completed"
    assert doc["export"]["sent"] == len(stack.held()) > 0
    assert any(line.startswith("exported ") for line in follow_lines)


def test_a_refusal_is_reported_not_retried(make_stack) -> None:
    stack = make_stack(SMALL, CATALOG_SOURCE_ALLOW="")
    stub = StubLambda(stack)
    runner = _deployed(stack, stub)
    with pytest.raises(Exception, match="refused"):
        running.do_remote_run(
            runner, {"action": "sync", "source": "/proc/self/environ"}, print, poll=0.05
        )
    assert len(stub.calls) == 1


def test_status_run_without_follow_prints_the_record(make_stack, monkeypatch) -> None:
    stack = make_stack(SMALL)
    result = stack.resync()
    run_id = result["runs"][0]["run_id"]
    runner = _deployed(stack, StubLambda(stack))
    lines: list[str] = []
    monkeypatch.setattr(status, "runner_for", lambda _t: runner)
    target = Target(local=False, stack="unused", region=None)
    doc = status.do_run_status(target, run_id, None, False, lines.append)
    assert doc["run_id"] == run_id and f"run {run_id}" in lines[0]
    with pytest.raises(Exception, match="no run 'nope'"):
        from catalogctl.remote import find_run

        find_run(runner.state(), "nope")
