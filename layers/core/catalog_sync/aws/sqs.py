"""`ExportQueue` over an SQS queue (an injected boto3 SQS client)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError

from catalog_sync.errors import ConfigError, RetryableError
from catalog_sync.sync.runs import ContinuationMessage
from catalog_sync.sync.snapshot import ExportMessage

BATCH_SIZE = 10  # SendMessageBatch's limit
SEND_TRIES = 4

_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


class SqsExportQueue:
    """Sends export messages 10 to a call (body: the message's JSON). Entries SQS
    refuses are sent again, with backoff, up to `tries` times; then `RetryableError`
    names the parts that were not queued (the others were)."""

    def __init__(
        self,
        sqs_client: Any,
        queue_url: str,
        *,
        tries: int = SEND_TRIES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.tries = tries
        self._sleep = sleep

    def send(self, messages: Sequence[ExportMessage]) -> None:
        for start in range(0, len(messages), BATCH_SIZE):
            self._send_batch(messages[start : start + BATCH_SIZE])

    def _send_batch(self, batch: Sequence[ExportMessage]) -> None:
        pending = {str(i): m for i, m in enumerate(batch)}
        failures: list[dict[str, Any]] = []
        for attempt in range(self.tries):
            entries = [{"Id": i, "MessageBody": m.model_dump_json()} for i, m in pending.items()]
            try:
                response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in _MISSING_QUEUE:
                    raise ConfigError(f"SQS queue {self.queue_url!r} does not exist") from exc
                raise
            failures = response.get("Failed", [])
            sent = {s["Id"] for s in response.get("Successful", [])}
            pending = {i: m for i, m in pending.items() if i not in sent}
            if not pending:
                return
            if attempt + 1 < self.tries:
                self._sleep(min(2.0, 0.1 * 2**attempt))
        reasons = {f["Id"]: f"{f.get('Code', '?')}: {f.get('Message', '')}" for f in failures}
        names = ", ".join(
            f"{m.describe()} ({reasons.get(i, 'no answer')})" for i, m in pending.items()
        )
        raise RetryableError(
            f"SQS queue {self.queue_url}: {len(pending)} export messages not queued after "
            f"{self.tries} tries: {names}"
        )


class SqsContinuationQueue:
    """`ContinuationQueue` over the reindex function's own SQS queue: one message
    per hand-on (its consumer is the reindex function)."""

    def __init__(self, sqs_client: Any, queue_url: str) -> None:
        self.sqs = sqs_client
        self.queue_url = queue_url

    def send(self, message: ContinuationMessage) -> None:
        try:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=message.model_dump_json())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING_QUEUE:
                raise ConfigError(f"SQS queue {self.queue_url!r} does not exist") from exc
            raise
