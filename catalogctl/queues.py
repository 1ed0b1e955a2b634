"""The export queue's dead-letter queue: its depth and the redrive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from catalogctl.common import Target, UserError, queues_of, runner_for


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
    runner = runner or runner_for(target)
    sqs, queue_url, dlq_url = queues_of(target, runner)
    if not dlq_url:
        raise UserError("no dead-letter queue configured (EXPORT_DLQ_URL)")
    moved = redrive_messages(sqs, queue_url, dlq_url)
    echo(f"moved {moved} message(s) from the dead-letter queue back to the export queue")
    if target.local and moved:
        drained = runner.drain()
        echo(f"exported {drained.succeeded} part(s)")
    return moved
