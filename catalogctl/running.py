"""Running a reindex event from the CLI: locally (reindex, then deliver the export
messages in-process) or on a deployed stack (invoke, then follow the run record)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from catalog_sync.ports import FeedState
from catalogctl.common import Target, UserError, runner_for
from catalogctl.held import held_lines


def progress_printer(echo: Callable[[str], None]) -> Callable[[str, int, int | None], None]:
    def progress(stage: str, done: int, total: int | None) -> None:
        if stage == "read":
            echo(f"  read {done:,} records" + (" (done)" if total is not None else ""))
        elif stage == "diff" and total and done == total:
            echo(f"  diffed {done}/{total} buckets")

    return progress


def summarise_run(run: dict[str, Any], echo: Callable[[str], None]) -> None:
    c = run.get("counts", {})
    if run.get("status") == "skipped":
        echo(f"{run['feed']}: skipped: {run['reason']}")
        return
    echo(
        f"{run['feed']}: run {run['run_id']} ({run['kind']}, {run['status']}): "
        f"{c.get('items_read', 0):,} items built; new {c.get('new', 0):,}, "
        f"changed {c.get('changed', 0):,}, deleted {c.get('deleted', 0):,}, "
        f"unchanged {c.get('unchanged', 0):,}, resent {c.get('requeued', 0):,}; "
        f"{run.get('parts_enqueued', 0)} parts queued"
    )
    if run.get("status") == "held" or (run.get("status") == "dry-run" and run.get("held")):
        for line in held_lines(run):
            echo(line)
    if run.get("source_unchanged"):
        echo(
            f"  the source is byte for byte what run {run['source_unchanged']} read: "
            "nothing read, built or diffed; waiting items requeued"
        )
    if c.get("deletions_withheld"):
        echo(
            f"  the source was not read completely: {c['deletions_withheld']:,} deletions withheld"
        )
    if run.get("continues"):
        echo(
            f"  continues in a follow-up invocation (continuation {run['continuations']}): "
            f"catalogctl status --run {run['run_id']} --follow"
        )
    elif run.get("continuations"):
        echo(f"  ran in {run['continuations'] + 1} invocations")
    if run.get("issues_total"):
        echo(f"  {run['issues_total']} source issue(s):")
        for issue in run["issues"][:10]:
            echo(f"    {issue_text(issue)}")
        if run["issues_total"] > 10:
            echo("    ... (catalogctl status shows them all)")
    for kind, keys in (run.get("preview") or {}).items():
        if keys:
            echo(f"  would send ({kind}): {', '.join(keys)}")


def issue_text(issue: dict[str, Any]) -> str:
    where = [
        f"line {issue['line']}" if issue.get("line") is not None else None,
        f"sku {issue['sku']!r}" if issue.get("sku") is not None else None,
        f"field {issue['field']!r}" if issue.get("field") is not None else None,
    ]
    prefix = ", ".join(w for w in where if w)
    sev = "" if issue.get("severity", "error") == "error" else f"[{issue['severity']}] "
    return f"{sev}{prefix}: {issue['message']}" if prefix else f"{sev}{issue['message']}"


def do_run(
    target: Target,
    event: dict[str, Any],
    echo: Callable[[str], None] = click.echo,
    *,
    runner: Any = None,
) -> dict[str, Any]:
    """Run a reindex event, then (locally) deliver the export messages. `runner`: one
    already made for the target (the dashboard keeps one), else a new one."""
    if target.local:
        from devstack.local import LocalRunner, default_local_env

        if runner is None:
            runner = LocalRunner(default_local_env(), progress=progress_printer(echo))
        result = runner.reindex(event)
        refusal(result)
        for run in result["runs"]:
            summarise_run(run, echo)
        queued = sum(r.get("parts_enqueued", 0) for r in result["runs"])
        if queued and not event.get("dryRun"):
            drained = runner.drain()
            state = runner.app.state
            totals = {"sent": 0, "failed": 0, "retry": 0}
            parts = 0
            for run in result["runs"]:
                if "run_id" not in run:
                    continue
                for part in state.list_part_results(run["feed"], run["run_id"]):
                    parts += 1
                    for k in totals:
                        totals[k] += part.counts.get(k, 0)
            echo(
                f"exported {parts} part(s) in {drained.succeeded} message(s): "
                f"{totals['sent']:,} items sent, "
                f"{totals['failed']:,} failed, {totals['retry']:,} to retry"
                + (
                    f"; {drained.failed_attempts} failed attempt(s)"
                    if drained.failed_attempts
                    else ""
                )
            )
            result["export"] = totals
        return result
    return do_remote_run(runner or runner_for(target), event, echo)


# --- a deployed stack: invoke, follow the run, Ctrl-C leaves it going ---------------


def refusal(result: dict[str, Any]) -> None:
    """A refused request (the function's answer, not an error): one line, exit 1."""
    if result.get("status") == "refused":
        raise UserError(f"refused: {result.get('reason')}")


def export_line(totals: dict[str, int]) -> str:
    return (
        f"exported {totals['parts']} part(s): {totals['sent']:,} items sent, "
        f"{totals['failed']:,} failed, {totals['retry']:,} to retry"
        + (f"; {totals['errors']} part(s) stopped with an error" if totals.get("errors") else "")
    )


def follow_hint(runs: list[tuple[str, str]], echo: Callable[[str], None]) -> None:
    if not runs:
        echo("stopped following; the run goes on: `catalogctl status` shows it")
    for feed, run_id in runs:
        echo(
            f"stopped following; run {run_id} ({feed}) goes on: "
            f"catalogctl status --run {run_id} --follow"
        )


def do_remote_run(
    runner: Any,
    event: dict[str, Any],
    echo: Callable[[str], None] = click.echo,
    *,
    sleep: Callable[[float], None] | None = None,
    poll: float | None = None,
) -> dict[str, Any]:
    from catalogctl.remote import Follower, Interrupted, run_and_follow

    follower = Follower(runner.state(), echo)
    if sleep is not None:
        follower.sleep = sleep
    if poll is not None:
        follower.poll = poll
    try:
        result = run_and_follow(runner, event, follower)
    except Interrupted as exc:
        follow_hint(exc.runs, echo)
        raise SystemExit(130) from None
    refusal(result)
    for run in result["runs"]:
        summarise_run(run, echo)
    if "export" in result:
        echo(export_line(result["export"]))
    return result


def do_follow(
    target: Target,
    run_id: str,
    feed: str | None,
    echo: Callable[[str], None] = click.echo,
    *,
    sleep: Callable[[float], None] | None = None,
    poll: float | None = None,
) -> dict[str, Any]:
    """`status --run ID [--follow]`: one run's record; with --follow, until it and its
    exports end (Ctrl-C stops following, never the run)."""
    from catalogctl.remote import Follower, find_run

    runner = runner_for(target)
    state: FeedState = runner.app.state if target.local else runner.state()
    run = find_run(state, run_id, feed)
    follower = Follower(state, echo)
    if sleep is not None:
        follower.sleep = sleep
    if poll is not None:
        follower.poll = poll
    try:
        run = follower.until_finished(run.feed, run.run_id)
        doc = run.model_dump(mode="json")
        summarise_run(doc, echo)
        if run.parts_enqueued and run.status != "dry-run":
            doc["export"] = follower.exports([run])
            echo(export_line(doc["export"]))
    except KeyboardInterrupt:
        follow_hint([(run.feed, run.run_id)], echo)
        raise SystemExit(130) from None
    return doc
