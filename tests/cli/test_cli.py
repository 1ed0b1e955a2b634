"""catalogctl, as a user runs it, against a local stack (--local)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog_sync.feeds.registry import all_feeds
from catalog_sync.sync.reindex import new_run_id
from catalog_sync.sync.runs import RunRecord
from catalogctl.cli import cli
from tests.e2e.conftest import FIXTURES

SMALL = FIXTURES / "catalogs" / "small.csv"


@pytest.fixture
def local(make_stack, monkeypatch, tmp_path: Path):
    catalog = tmp_path / "catalog.csv"
    catalog.write_bytes(SMALL.read_bytes())
    stack = make_stack(catalog)
    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CATALOG_SOURCE", raising=False)  # found through the stack's SSM
    stack.catalog = catalog
    return stack


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_resync_then_status_json(local):
    code, out = run("--local", "resync", "--feed", "products")
    assert code == 0, out
    assert "new 11" in out and "11 items sent" in out

    code, out = run("--local", "status", "--feed", "products", "--json")
    status = json.loads(out)[0]
    assert status["counts"]["sent"] == 11
    assert status["runs"][0]["kind"] == "resync"
    assert status["dead_letter_messages"] == 0


def test_cli_dry_run_changes_nothing(local):
    run("--local", "resync", "--feed", "products")
    local.catalog.write_text(local.catalog.read_text().replace(",17,", ",18,", 1))
    accepted = local.receiver.stats()["items"]["accepted"]

    code, out = run("--local", "sync", "--dry-run")

    assert code == 0, out
    assert "would send (changed): 24-WG086 / default" in out
    assert local.receiver.stats()["items"]["accepted"] == accepted
    code, out = run("--local", "sync")
    assert ": 1 items sent," in out
    assert local.receiver.stats()["items"]["accepted"] == accepted + 1


def test_cli_unknown_feed_is_one_clear_line(local):
    code, out = run("--local", "resync", "--feed", "nope")
    assert code != 0
    lines = out.strip().splitlines()
    assert len(lines) == 1
    assert lines[0] == f"Error: unknown feed 'nope' (known feeds: {', '.join(all_feeds())})"
    assert "products" in all_feeds()


def test_cli_second_resync_is_refused_naming_the_lease_holder(local):
    state = local.runner.app.state
    state.acquire_lease("products", "run-by-someone", datetime.now(UTC), 600)
    code, out = run("--local", "resync", "--feed", "products")
    assert code != 0
    assert "lease held by run-by-someone until" in out
    assert "Traceback" not in out


def test_cli_unreachable_stack_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    code, out = run("--local", "status", "--feed", "products")
    assert code != 0
    assert "cannot reach http://127.0.0.1:9" in out
    assert "Traceback" not in out


def test_cli_redrive_puts_dead_letters_back_and_exports_them(local):
    run("--local", "resync", "--feed", "products")
    sqs = local.runner.app.client("sqs")
    dlq = local.env["EXPORT_DLQ_URL"]
    run_id = local.runner.app.state.list_runs("products")[0].run_id
    body = json.dumps(
        {"feed": "products", "run_id": run_id, "bucket": 3, "part_key": None, "manifest_key": "m"}
    )
    sqs.send_message(QueueUrl=dlq, MessageBody=body)

    code, out = run("--local", "status", "--feed", "products")
    assert "dead-letter queue: 1 export message(s)" in out

    code, out = run("--local", "redrive")
    assert code == 0, out
    assert "moved 1 message(s)" in out
    assert "exported 1 part(s)" in out
    code, out = run("--local", "status", "--feed", "products", "--json")
    assert json.loads(out)[0]["dead_letter_messages"] == 0


def test_cli_continue_resync_without_an_interrupted_one_says_so(local):
    run("--local", "resync", "--feed", "products")
    code, out = run("--local", "resync", "--feed", "products", "--continue-resync")
    assert code != 0
    assert "no interrupted resync of products to continue" in out


def test_cli_continue_resync_resumes_from_the_checkpoint(local):
    state = local.runner.app.state
    run("--local", "resync", "--feed", "products")
    # an interrupted resync: its record says it got half way
    started = datetime.now(UTC)
    interrupted = RunRecord(
        feed="products",
        run_id=new_run_id(started, lambda: "crashed0"),
        kind="resync",
        started_at=started.isoformat(),
        status="running",
        buckets_done=32,
    )
    state.put_run(interrupted)
    code, out = run("--local", "resync", "--feed", "products", "--continue-resync")
    assert code == 0, out
    latest = state.list_runs("products")[0]
    assert latest.kind == "resync-continue", [r.run_id for r in state.list_runs("products")]
    assert latest.resumed_from == interrupted.run_id
    # only items in buckets from 32 on were resent; the rest were done
    assert 0 < latest.counts["requeued"] < 11


def test_cli_local_follows_a_run_through_its_continuations(local, monkeypatch):
    """`--local` delivers the continuations in-process: the user sees the run end, in
    how many invocations, and its exports; `status` says so too."""
    monkeypatch.setenv("RUN_TIME_BUDGET_SECONDS", "0")  # hand on after every step
    code, out = run("--local", "resync", "--feed", "products")
    assert code == 0, out
    assert "(resync, completed)" in out and "new 11" in out
    assert "ran in 17 invocations" in out, out  # the read, then 64 buckets 4 at a time
    assert "11 items sent" in out
    code, out = run("--local", "status", "--feed", "products")
    assert "in 17 invocations" in out


def test_cli_stdout_carries_only_its_own_lines(local):
    """A real process, as a user starts it: no EMF blob, no Powertools warning, no JSON
    log line on stdout after a whole sync (the handlers' metrics are not for a terminal)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    proc = subprocess.run(
        [sys.executable, "-c", "from catalogctl.cli import main; main()", "--local", "sync"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert any(" items sent" in line for line in lines), proc.stdout
    for line in lines:
        with pytest.raises(ValueError):
            json.loads(line)  # no EMF document, no JSON log line
        assert "metrics" not in line.lower(), line  # "No application metrics to publish"
        assert "Warning:" not in line, line  # no Python/Powertools warning
    assert "_aws" not in proc.stdout + proc.stderr
