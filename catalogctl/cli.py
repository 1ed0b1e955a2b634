"""`catalogctl`: resync, sync, status, feeds, and the embedded local stack.

Each click command only declares options and hands them to a plain `do_*`
function (tests call those directly). User errors are one line, not a traceback.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from catalog_sync.errors import CatalogSyncError
from catalog_sync.feeds.registry import all_feeds, get_feed
from catalog_sync.ports import FeedState
from catalog_sync.sync.requests import ReindexEvent
from catalog_sync.sync.state import Status


class UserError(click.ClickException):
    """A clear, one-line error for the user."""


@dataclass
class Target:
    """Where commands go: the embedded local stack (`--local`) or a deployed stack."""

    local: bool
    stack: str
    region: str | None


# --- running ----------------------------------------------------------------


def _progress_printer(echo: Callable[[str], None]) -> Callable[[str, int, int | None], None]:
    def progress(stage: str, done: int, total: int | None) -> None:
        if stage == "read":
            echo(f"  read {done:,} records" + (" (done)" if total is not None else ""))
        elif stage == "diff" and total and done == total:
            echo(f"  diffed {done}/{total} buckets")

    return progress


def _summarise_run(run: dict[str, Any], echo: Callable[[str], None]) -> None:
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
    if c.get("deletions_withheld"):
        echo(
            f"  the source was not read completely: {c['deletions_withheld']:,} deletions withheld"
        )
    if run.get("issues_total"):
        echo(f"  {run['issues_total']} source issue(s):")
        for issue in run["issues"][:10]:
            echo(f"    {_issue_text(issue)}")
        if run["issues_total"] > 10:
            echo("    ... (catalogctl status shows them all)")
    for kind, keys in (run.get("preview") or {}).items():
        if keys:
            echo(f"  would send ({kind}): {', '.join(keys)}")


def _issue_text(issue: dict[str, Any]) -> str:
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
            runner = LocalRunner(default_local_env(), progress=_progress_printer(echo))
        result = runner.reindex(event)
        for run in result["runs"]:
            _summarise_run(run, echo)
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
    return do_remote_run(runner or _runner(target), event, echo)


# --- a deployed stack: invoke, follow the run, Ctrl-C leaves it going ---------------


def _export_line(totals: dict[str, int]) -> str:
    return (
        f"exported {totals['parts']} part(s): {totals['sent']:,} items sent, "
        f"{totals['failed']:,} failed, {totals['retry']:,} to retry"
        + (f"; {totals['errors']} part(s) stopped with an error" if totals.get("errors") else "")
    )


def _follow_hint(runs: list[tuple[str, str]], echo: Callable[[str], None]) -> None:
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
        _follow_hint(exc.runs, echo)
        raise SystemExit(130) from None
    for run in result["runs"]:
        _summarise_run(run, echo)
    if "export" in result:
        echo(_export_line(result["export"]))
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

    runner = _runner(target)
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
        _summarise_run(doc, echo)
        if run.parts_enqueued and run.status != "dry-run":
            doc["export"] = follower.exports([run])
            echo(_export_line(doc["export"]))
    except KeyboardInterrupt:
        _follow_hint([(run.feed, run.run_id)], echo)
        raise SystemExit(130) from None
    return doc


# --- status -----------------------------------------------------------------


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
    if status["failed_items"]:
        echo("  failed items:")
        for f in status["failed_items"]:
            echo(f"    {f['item']}: {f['status']}: {f['reason']}")
    if status["runs"] and status["runs"][0].get("issues"):
        echo("  source issues of the last run:")
        for issue in status["runs"][0]["issues"]:
            echo(f"    {_issue_text(issue)}")


def do_status(
    target: Target, feeds: list[str], as_json: bool, echo: Callable[[str], None] = click.echo
) -> list[dict[str, Any]]:
    runner = _runner(target)
    state: FeedState = runner.app.state if target.local else runner.state()
    out = [collect_status(state, feed) for feed in feeds]
    sqs, _, dlq_url = _queues(target, runner)
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

    runner = _runner(target)
    state: FeedState = runner.app.state if target.local else runner.state()
    doc = find_run(state, run_id, feed).model_dump(mode="json")
    if as_json:
        echo(json.dumps(doc, indent=2, default=str))
    else:
        _summarise_run(doc, echo)
    return doc


# --- dead-letter queue -----------------------------------------------------------


def _runner(target: Target) -> Any:
    """A LocalRunner (`--local`) or a RemoteRunner: made once per command."""
    if target.local:
        from devstack.local import LocalRunner, default_local_env

        return LocalRunner(default_local_env())
    from catalogctl.remote import RemoteRunner

    return RemoteRunner(target.stack, target.region)


def _queues(target: Target, runner: Any) -> tuple[Any, str, str | None]:
    """(sqs client, export queue URL, DLQ URL) of the target."""
    if target.local:
        app = runner.app
        return app.client("sqs"), app.settings.export_queue_url, app.settings.export_dlq_url
    return (
        runner.session.client("sqs"),
        runner.outputs["ExportQueueUrl"],
        runner.outputs.get("ExportDLQUrl"),
    )


def dlq_depth(sqs: Any, dlq_url: str | None) -> int | None:
    if not dlq_url:
        return None
    from devstack.local import queue_depth

    return queue_depth(sqs, dlq_url)


def redrive_messages(sqs: Any, queue_url: str, dlq_url: str) -> int:
    """Move every message of the DLQ back to the queue (send first, then delete:
    a crash in between duplicates a message, which the export tolerates)."""
    moved = 0
    while True:
        msgs = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
        ).get("Messages", [])
        if not msgs:
            return moved
        entries = [{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(msgs)]
        resp = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if resp.get("Failed"):
            raise UserError(f"could not move messages back: {resp['Failed'][0].get('Message')}")
        sqs.delete_message_batch(
            QueueUrl=dlq_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
            ],
        )
        moved += len(msgs)


def do_redrive(
    target: Target, echo: Callable[[str], None] = click.echo, *, runner: Any = None
) -> int:
    runner = runner or _runner(target)
    sqs, queue_url, dlq_url = _queues(target, runner)
    if not dlq_url:
        raise UserError("no dead-letter queue configured (EXPORT_DLQ_URL)")
    moved = redrive_messages(sqs, queue_url, dlq_url)
    echo(f"moved {moved} message(s) from the dead-letter queue back to the export queue")
    if target.local and moved:
        drained = runner.drain()
        echo(f"exported {drained.succeeded} part(s)")
    return moved


# --- local up -----------------------------------------------------------------


def do_local_up(
    source: str | None,
    aws_port: int,
    receiver_port: int,
    echo: Callable[[str], None] = click.echo,
    *,
    stop_event: threading.Event | None = None,
    target: str = "commerce-services",
) -> None:
    from devstack.local import LocalStack

    if source and not source.startswith("s3://"):
        path = Path(source)
        if not path.exists():
            raise UserError(f"no catalog at {source}")
        source = str(path.resolve())
    stack = LocalStack(aws_port=aws_port, receiver_port=receiver_port, source=source, target=target)
    stack.start()
    _tune_gc()
    try:
        for k, v in sorted(stack.env.items()):
            echo(f"{k}={v}")
        echo("")  # the end of the environment block
        sys.stdout.flush()
        click.echo("local stack up (moto + feed receiver); Ctrl-C stops it", err=True)
        stop = stop_event or threading.Event()
        if stop_event is None:
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        stack.stop()
        click.echo("local stack stopped", err=True)


# --- click --------------------------------------------------------------------


def _split_ids(value: str | None) -> list[str] | None:
    if not value:
        return None
    ids = [v.strip() for v in value.split(",") if v.strip()]
    return ids or None


def _check_feed(feed: str) -> str:
    try:
        get_feed(feed)
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from None
    return feed


@click.group()
@click.option(
    "--local", "local", is_flag=True, help="Use the embedded local stack (catalogctl local up)."
)
@click.option(
    "--stack",
    default=lambda: os.environ.get("CATALOG_SYNC_STACK", "catalog-sync"),
    show_default="catalog-sync",
    help="CloudFormation stack of a deployment.",
)
@click.option("--region", default=None, help="AWS region of the deployment.")
@click.pass_context
def cli(ctx: click.Context, local: bool, stack: str, region: str | None) -> None:
    """Keep a Magento catalog in sync with SaaS feed APIs."""
    ctx.obj = Target(local=local, stack=stack, region=region)


@cli.command()
@click.option("--feed", required=True, help="The feed to resync, e.g. products.")
@click.option(
    "--no-reindex", is_flag=True, help="Resend the compiled feed without reading the source."
)
@click.option("--dry-run", is_flag=True, help="Show what would be sent; change nothing.")
@click.option("--by-ids", default=None, help="Only these ids, comma-separated.")
@click.option(
    "--id-type", type=click.Choice(["sku", "productId"]), default="sku", show_default=True
)
@click.option("--source", default=None, help="Catalog source for this run (path or s3:// URI).")
@click.option(
    "--failed-only", is_flag=True, help="Resend only items waiting for a retry; no source read."
)
@click.option(
    "--continue-resync", is_flag=True, help="Continue an interrupted resync from its checkpoint."
)
@click.option(
    "--cleanup-feed", is_flag=True, help="Rebuild the feed state from scratch (deletes still sent)."
)
@click.pass_obj
def resync(
    target: Target,
    feed: str,
    no_reindex: bool,
    dry_run: bool,
    by_ids: str | None,
    id_type: str,
    source: str | None,
    failed_only: bool,
    continue_resync: bool,
    cleanup_feed: bool,
) -> None:
    """Reindex a feed treating every item as changed, and send it."""
    event: dict[str, Any] = {"action": "resync", "feed": _check_feed(feed)}
    for flag, name in (
        (failed_only, "failedOnly"),
        (continue_resync, "continueResync"),
        (cleanup_feed, "cleanupFeed"),
    ):
        if flag:
            event[name] = True
    if no_reindex:
        event["noReindex"] = True
    if dry_run:
        event["dryRun"] = True
    ids = _split_ids(by_ids)
    if ids:
        event["byIds"] = ids
        event["idType"] = id_type
    if source:
        event["source"] = source
    _guard(lambda: do_run(target, _checked(event)))


def _checked(event: dict[str, Any]) -> dict[str, Any]:
    """The event, if its options make one run mode (the event model decides, as the
    handler does); else the model's one-line error."""
    ReindexEvent.parse(event)
    return event


@cli.command()
@click.option("--source", default=None, help="Catalog source for this run (path or s3:// URI).")
@click.option("--dry-run", is_flag=True, help="Show what would be sent; change nothing.")
@click.pass_obj
def sync(target: Target, source: str | None, dry_run: bool) -> None:
    """What the hourly schedule runs: an incremental reindex of every enabled feed, then export."""
    event: dict[str, Any] = {"action": "sync"}
    if source:
        event["source"] = source
    if dry_run:
        event["dryRun"] = True
    _guard(lambda: do_run(target, event))


@cli.command()
@click.option("--feed", "feed", default=None, help="One feed (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--run", "run_id", default=None, help="One run (its id): its record and exports.")
@click.option("--follow", is_flag=True, help="With --run: until the run and its exports end.")
@click.pass_obj
def status(
    target: Target, feed: str | None, as_json: bool, run_id: str | None, follow: bool
) -> None:
    """Counts by status, last runs, failed items with their reasons, source issues."""
    if follow and not run_id:
        raise UserError("--follow needs --run ID")
    if run_id:
        feed_name = _check_feed(feed) if feed else None
        if follow:
            _guard(lambda: do_follow(target, run_id, feed_name))
            return
        _guard(lambda: do_run_status(target, run_id, feed_name, as_json))
        return
    feeds = [_check_feed(feed)] if feed else all_feeds()
    _guard(lambda: do_status(target, feeds, as_json))


@cli.command()
@click.pass_obj
def redrive(target: Target) -> None:
    """Move the export messages in the dead-letter queue back to the export queue."""
    _guard(lambda: do_redrive(target))


@cli.command()
def feeds() -> None:
    """List the feeds."""
    for name in all_feeds():
        spec = get_feed(name)
        click.echo(f"{name:<22} identity: {' + '.join(spec.identity)}")


@cli.group()
def local() -> None:
    """The embedded local stack."""


def _tune_gc() -> None:
    """This process is only the stack: moto's service models (millions of objects)
    are loaded by now and never freed. Freezing them keeps every later collection
    from walking them, and a larger first generation means fewer collections while
    request bodies are parsed (measured: export of 90k items 20 s -> 14 s)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


@local.command("up")
@click.option("--source", default=None, help="The catalog (Magento export CSV: path or s3:// URI).")
@click.option("--aws-port", default=5055, show_default=True, type=int)
@click.option("--receiver-port", default=8787, show_default=True, type=int)
@click.option(
    "--target",
    type=click.Choice(["commerce-services", "aco"]),
    default="commerce-services",
    show_default=True,
    help="aco: the local ACO emulator (on --receiver-port) instead of the feed receiver.",
)
def local_up(source: str | None, aws_port: int, receiver_port: int, target: str) -> None:
    """Run moto + the feed receiver (or the ACO emulator) in the foreground; print the environment."""
    _guard(lambda: do_local_up(source, aws_port, receiver_port, target=target))


# --- dashboard ---------------------------------------------------------------


@cli.command()
@click.option("--port", default=8088, show_default=True, type=int, help="0: any free port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.pass_obj
def dashboard(target: Target, port: int, host: str) -> None:
    """Serve the dashboard (overview, runs, items, failures, actions) on this machine."""
    from catalogctl.dashboard.server import serve

    server, _ = _guard(lambda: serve(target, host, port, click.echo))
    click.echo("open the address above (it carries the access token); Ctrl-C stops", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _guard(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except CatalogSyncError as exc:
        raise UserError(str(exc)) from None
    except EndpointConnectionError as exc:
        raise UserError(
            f"cannot reach {exc.kwargs.get('endpoint_url')}: is `catalogctl local up` running?"
        ) from None
    except (ClientError, BotoCoreError) as exc:
        raise UserError(f"AWS: {exc}") from None
    except OSError as exc:
        raise UserError(f"{exc}") from None


def main() -> None:
    cli(prog_name="catalogctl")


if __name__ == "__main__":
    main()
