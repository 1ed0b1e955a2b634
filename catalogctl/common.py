"""What every catalogctl command shares: the target, the one-line user error, the
runner (the local stack or a deployed one) and its queues."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click

from catalog_sync.feeds.registry import get_feed


class UserError(click.ClickException):
    """A clear, one-line error for the user."""


@dataclass
class Target:
    """Where commands go: the embedded local stack (`--local`) or a deployed stack."""

    local: bool
    stack: str
    region: str | None


def runner_for(target: Target) -> Any:
    """A LocalRunner (`--local`) or a RemoteRunner: made once per command."""
    if target.local:
        from devstack.local import LocalRunner, default_local_env

        return LocalRunner(default_local_env())
    from catalogctl.remote import RemoteRunner

    return RemoteRunner(target.stack, target.region)


def queues_of(target: Target, runner: Any) -> tuple[Any, str, str | None]:
    """(sqs client, export queue URL, DLQ URL) of the target."""
    if target.local:
        app = runner.app
        return app.client("sqs"), app.settings.export_queue_url, app.settings.export_dlq_url
    return (
        runner.session.client("sqs"),
        runner.outputs["ExportQueueUrl"],
        runner.outputs.get("ExportDLQUrl"),
    )


def check_feed(feed: str) -> str:
    try:
        get_feed(feed)
    except KeyError as exc:
        raise UserError(str(exc.args[0])) from None
    return feed
