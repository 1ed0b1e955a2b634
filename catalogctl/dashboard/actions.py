"""The dashboard's actions: the same events and functions as the CLI commands
(`resync`, `resync --no-reindex`, `resync --by-ids`, `resync --failed-only`,
`resync --confirm-deletions`, `redrive`), run against the runner the dashboard holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from catalog_sync.sync.guard import release_command
from catalogctl.common import Target, UserError, check_feed
from catalogctl.dashboard import data
from catalogctl.dashboard.jobs import Job
from catalogctl.queues import do_redrive
from catalogctl.running import do_run

MAX_IDS = 500


@dataclass(frozen=True)
class Action:
    name: str
    title: str
    explain: str  # what confirming does, in words
    command: str  # the CLI command that does the same


def _ids(raw: str) -> list[str]:
    ids = list(dict.fromkeys(v.strip() for v in raw.replace("\n", ",").split(",") if v.strip()))
    if not ids:
        raise UserError("choose at least one item (SKU) for --by-ids")
    if len(ids) > MAX_IDS:
        raise UserError(f"at most {MAX_IDS} ids at a time ({len(ids)} given)")
    return ids


def describe(name: str, form: dict[str, str], backend: data.Backend) -> Action:
    """What an action would do (the confirmation page), or a `UserError`."""
    feed = form.get("feed", "")
    if name == "redrive":
        depth = backend.dlq_depth()
        return Action(
            name,
            "Redrive the dead-letter queue",
            f"Move the {depth if depth is not None else 'unknown number of'} message(s) of the "
            "dead-letter queue back to the export queue, where they are exported again.",
            "catalogctl redrive",
        )
    check_feed(feed)
    if name == "resync":
        return Action(
            name,
            f"Resync {feed}",
            f"Read the catalog source, compile every {feed} item and send them all, "
            "changed or not.",
            f"catalogctl resync --feed {feed}",
        )
    if name == "resync-no-reindex":
        return Action(
            name,
            f"Resend {feed} without reindexing",
            f"Send the compiled {feed} feed of the last run again; the source is not read.",
            f"catalogctl resync --feed {feed} --no-reindex",
        )
    if name == "resync-by-ids":
        ids = _ids(form.get("ids", ""))
        shown = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
        return Action(
            name,
            f"Resync {len(ids)} item(s) of {feed}",
            f"Read these SKUs from the source and send their {feed} items: {shown}.",
            f"catalogctl resync --feed {feed} --by-ids {','.join(ids)}",
        )
    if name == "confirm-deletions":
        held = data.held_of(backend.state.list_runs(feed, limit=20))
        if held is None:
            raise UserError(f"{feed} has no held deletions")
        n = held.counts.get("deletions_held", 0)
        return Action(
            name,
            f"Confirm the {n:,} held deletion(s) of {feed}",
            f"Run {held.run_id} held them: {held.held}. Confirming reads the catalog source "
            f"again and deletes, at the SaaS service, the {feed} items it no longer has "
            "(as a resync: every other item is sent again). If the export was wrong, fix "
            "it instead: the next sync then deletes nothing.",
            release_command(feed),
        )
    if name == "resend-failed":
        groups = sorted({r.group for r in data.failures(backend, [feed], {"failed"})})
        retry = sum(1 for _ in data.failures(backend, [feed], {"retry"}))
        if not groups and not retry:
            raise UserError(f"{feed} has no failed or retrying items")
        parts = []
        if groups:
            parts.append(
                f"resync the {len(groups)} SKU(s) whose items the SaaS service rejected "
                f"(they are read from the source again: fix them there first)"
            )
        if retry:
            parts.append(f"resend the {retry:,} item(s) waiting for a retry")
        command = []
        if groups:
            command.append(f"catalogctl resync --feed {feed} --by-ids {','.join(groups[:50])}")
        if retry:
            command.append(f"catalogctl resync --feed {feed} --failed-only")
        return Action(
            name, f"Resend what failed in {feed}", "; ".join(parts) + ".", " && ".join(command)
        )
    raise UserError(f"unknown action {name!r}")


def runner_for(
    name: str, form: dict[str, str], backend: data.Backend, target: Target, runner: Any
) -> Callable[[Job], None]:
    """The job that carries out a confirmed action."""
    feed = form.get("feed", "")

    def run(event: dict[str, Any]) -> Callable[[Job], None]:
        return lambda job: _run_event(job, target, runner, event)

    if name == "redrive":
        return lambda job: _redrive(job, target, runner)
    if name == "resync":
        return run({"action": "resync", "feed": feed})
    if name == "resync-no-reindex":
        return run({"action": "resync", "feed": feed, "noReindex": True})
    if name == "resync-by-ids":
        return run(
            {"action": "resync", "feed": feed, "byIds": _ids(form.get("ids", "")), "idType": "sku"}
        )
    if name == "confirm-deletions":
        return run({"action": "resync", "feed": feed, "confirmDeletions": True})
    if name == "resend-failed":
        return lambda job: _resend_failed(job, backend, target, runner, feed)
    raise UserError(f"unknown action {name!r}")


def _run_event(job: Job, target: Target, runner: Any, event: dict[str, Any]) -> None:
    job.echo(f"starting: {event}")
    with _progress_to(runner, job):
        do_run(target, event, job.echo, runner=runner)


def _redrive(job: Job, target: Target, runner: Any) -> None:
    with _progress_to(runner, job):
        do_redrive(target, job.echo, runner=runner)


def _resend_failed(job: Job, backend: data.Backend, target: Target, runner: Any, feed: str) -> None:
    groups = sorted({r.group for r in data.failures(backend, [feed], {"failed"})})
    retry = any(True for _ in data.failures(backend, [feed], {"retry"}))
    with _progress_to(runner, job):
        for start in range(0, len(groups), MAX_IDS):
            chunk = groups[start : start + MAX_IDS]
            job.echo(f"resync --by-ids of {len(chunk)} rejected SKU(s)")
            event = {"action": "resync", "feed": feed, "byIds": chunk, "idType": "sku"}
            do_run(target, event, job.echo, runner=runner)
        if retry:
            job.echo("resync --failed-only: items waiting for a retry")
            do_run(
                target,
                {"action": "resync", "feed": feed, "failedOnly": True},
                job.echo,
                runner=runner,
            )


class _progress_to:
    """Send a local runner's reindex progress (read N records) to the job's lines."""

    def __init__(self, runner: Any, job: Job) -> None:
        self.app = getattr(runner, "app", None)
        self.job = job
        self.before: Any = None

    def __enter__(self) -> None:
        if self.app is not None and hasattr(self.app, "progress"):
            from catalogctl.running import progress_printer

            self.before = self.app.progress
            self.app.progress = progress_printer(self.job.echo)

    def __exit__(self, *exc: object) -> None:
        if self.app is not None and hasattr(self.app, "progress"):
            self.app.progress = self.before
