"""Export function: SQS-triggered; each message names a feed's buckets to export.

Partial batch failures: a failing message is retried by SQS alone and ends in
the DLQ after the queue's maxReceiveCount; the others are deleted. The messages of
one invocation share its time (RUN_TIME_BUDGET_SECONDS, at most the context's
remaining time): when it runs low, the rest goes back to the queue as new messages.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from catalog_sync.app import current_app, export_budget, run_export_message
from catalog_sync.observability import logger, metrics
from catalog_sync.sync.export import Budget
from catalog_sync.sync.snapshot import ExportMessage
from catalog_sync.tracing import tracer

# Every failed message comes back as a batchItemFailure, even when all of them fail
# (e.g. a wrong API key): SQS retries each, and they end in the DLQ.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
_budget: Budget | None = None  # this invocation's


def record_handler(record: SQSRecord) -> dict[str, Any]:
    message = ExportMessage.model_validate_json(record.body)
    logger.append_keys(feed=message.feed, run_id=message.run_id, part=message.describe())
    result = run_export_message(message, current_app(), budget=_budget)
    logger.info("parts exported", extra={"counts": result.counts, "requests": result.requests})
    return result.counts


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # responses can be large
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _budget
    _budget = export_budget(current_app().settings, context.get_remaining_time_in_millis() / 1000)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
