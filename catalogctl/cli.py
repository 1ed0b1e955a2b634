"""`catalogctl`: resync, sync, status, feeds, redrive, the dashboard and the
embedded local stack.

Each click command only declares options and hands them to a plain `do_*`
function in its own module (`running`, `status`, `queues`, `localup`; tests call
those directly). User errors are one line, not a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from catalog_sync.errors import CatalogSyncError
from catalog_sync.feeds.registry import all_feeds, get_feed
from catalog_sync.sync.requests import ReindexEvent
from catalogctl.common import Target, UserError, check_feed
from catalogctl.localup import do_local_up
from catalogctl.queues import do_redrive
from catalogctl.running import do_follow, do_run
from catalogctl.status import do_run_status, do_status


def _split_ids(value: str | None) -> list[str] | None:
    if not value:
        return None
    ids = [v.strip() for v in value.split(",") if v.strip()]
    return ids or None


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
@click.option(
    "--confirm-deletions",
    is_flag=True,
    help="Apply deletions the mass-deletion guard would hold (MAX_DELETE_FRACTION, MAX_DELETES).",
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
    confirm_deletions: bool,
) -> None:
    """Reindex a feed treating every item as changed, and send it."""
    event: dict[str, Any] = {"action": "resync", "feed": check_feed(feed)}
    for flag, name in (
        (failed_only, "failedOnly"),
        (continue_resync, "continueResync"),
        (cleanup_feed, "cleanupFeed"),
        (confirm_deletions, "confirmDeletions"),
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
        feed_name = check_feed(feed) if feed else None
        if follow:
            _guard(lambda: do_follow(target, run_id, feed_name))
            return
        _guard(lambda: do_run_status(target, run_id, feed_name, as_json))
        return
    feeds = [check_feed(feed)] if feed else all_feeds()
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


@cli.command("check-source")
@click.argument("url")
@click.option("--token", envvar="MAGENTO_TOKEN", default="", help="The token (or MAGENTO_TOKEN).")
def check_source(url: str, token: str) -> None:
    """Probe the Magento REST endpoints the source reads; report missing permissions."""
    from catalogctl.check_source import run_check

    raise SystemExit(_guard(lambda: run_check(url, token, click.echo)))


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
