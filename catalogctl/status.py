"""`catalogctl status`: counts by status, last runs, failed items, source issues."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from catalog_sync.ports import FeedState
from catalog_sync.sync.state import Status
from catalogctl.common import Target, queues_of, runner_for
from catalogctl.held import held_lines, held_run
from catalogctl.queues import dlq_depth
from catalogctl.running import issue_text, summarise_run


def collect_status(state: FeedState, feed: str, *, failures: int = 50) -> dict[str, Any]:
    meta = state.read_meta(feed)
    out: dict[str, Any] = {"feed": feed, "items": 0, "counts": {}, "failed_items": [], "runs": []}
    if meta is None:
        return out
    counts = {s.value: 0 for s in Status} | {"deleted": 0}
    failed: list[dict[str, Any]] = []
    items = 0
    for bucket in state.read_buckets(feed, list(range(meta.buckets))):
        for key, rec in bucket.records.items():
            items += 1
            counts[rec.status.value] += 1
            counts["deleted"] += int(rec.deleted)
            if rec.status in (Status.FAILED, Status.RETRY) and len(failed) < failures:
                failed.append(
                    {
                        "item": key.replace("\x1f", " / "),
                        "status": rec.status.value,
                        "reason": rec.reason,
                        "attempts": rec.attempts,
                        "since": rec.changed_at,
                    }
                )
    out.update(items=items, counts=counts, failed_items=failed)
    runs = state.list_runs(feed, limit=5)
    out["runs"] = [r.model_dump(mode="json") for r in runs]
    if runs:
        parts = state.list_part_results(feed, runs[0].run_id)
        out["last_export"] = {
            "parts": len(parts),
            "errors": [p.error for p in parts if p.error],
            "counts": {
                k: sum(p.counts.get(k, 0) for p in parts) for k in ("sent", "failed", "retry")
            },
        }
    return out


def _continued(run: dict[str, Any]) -> str:
    if run["status"] == "running":
        return f"  continuation {run['continuations']}, {run.get('buckets_done', 0)} buckets diffed"
    return f"  in {run['continuations'] + 1} invocations"


def _unchanged(run: dict[str, Any]) -> str:
    if not run.get("source_unchanged"):
        return ""
    return f"  source unchanged since run {run['source_unchanged']} (nothing read or built)"


def print_status(status: dict[str, Any], echo: Callable[[str], None] = click.echo) -> None:
    c = status["counts"]
    if not status["runs"] and not status["items"]:
        echo(f"{status['feed']}: never synced")
        return
    echo(
        f"{status['feed']}: {status['items']:,} items: "
        + ", ".join(
            f"{k} {c.get(k, 0):,}" for k in ("sent", "pending", "retry", "failed", "deleted")
        )
    )
    for run in status["runs"]:
        rc = run.get("counts", {})
        echo(
            f"  run {run['run_id']} {run['kind']:<17} {run['status']:<9} "
            f"new {rc.get('new', 0):,} changed {rc.get('changed', 0):,} "
            f"deleted {rc.get('deleted', 0):,} issues {run.get('issues_total', 0)}"
            + (_continued(run) if run.get("continuations") else "")
            + _unchanged(run)
            + (f"  error: {run['error']}" if run.get("error") else "")
        )
    last = status.get("last_export")
    if last:
        lc = last["counts"]
        echo(
            f"  last export: {last['parts']} part(s), sent {lc['sent']:,}, "
            f"failed {lc['failed']:,}, retry {lc['retry']:,}"
        )
        for err in last["errors"]:
            echo(f"  export error: {err}")
    if status.get("dead_letter_messages"):
        echo(
            f"  dead-letter queue: {status['dead_letter_messages']} export message(s) gave up; "
            "`catalogctl redrive` puts them back"
        )
    held = held_run(status["runs"])
    if held is not None:
        for line in held_lines(held):
            echo(line)
    if status["failed_items"]:
        echo("  failed items:")
        for f in status["failed_items"]:
            echo(f"    {f['item']}: {f['status']}: {f['reason']}")
    if status["runs"] and status["runs"][0].get("issues"):
        echo("  source issues of the last run:")
        for issue in status["runs"][0]["issues"]:
            echo(f"    {issue_text(issue)}")


def do_status(
    target: Target, feeds: list[str], as_json: bool, echo: Callable[[str], None] = click.echo
) -> list[dict[str, Any]]:
    runner = runner_for(target)
    state: FeedState = runner.app.state if target.local else runner.state()
    out = [collect_status(state, feed) for feed in feeds]
    sqs, _, dlq_url = queues_of(target, runner)
    depth = dlq_depth(sqs, dlq_url)
    for s in out:
        s["dead_letter_messages"] = depth
    if as_json:
        echo(json.dumps(out, indent=2, default=str))
    else:
        for s in out:
            print_status(s, echo)
    return out


def do_run_status(
    target: Target, run_id: str, feed: str | None, as_json: bool,
    echo: Callable[[str], None] = click.echo,
) -> dict[str, Any]:  # fmt: skip
    from catalogctl.remote import find_run

    runner = runner_for(target)
    state: FeedState = runner.app.state if target.local else runner.state()
    doc = find_run(state, run_id, feed).model_dump(mode="json")
    if as_json:
        echo(json.dumps(doc, indent=2, default=str))
    else:
        summarise_run(doc, echo)
    return doc
