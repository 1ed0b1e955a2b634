"""Reindex function: the hourly schedule, resyncs, and the continuations of runs.

Events: the EventBridge scheduled event (= `{"action": "sync"}`) or
`{"action": "resync", "feed": "products", "noReindex": false, "byIds": [...]}`.
A refused request (bad options, an unknown feed, a refused source, a lease held by
another run) is answered with `{"status": "refused", "reason": ...}`, not an error.
From its continuation queue (SQS, batch size 1): the follow-up invocation of a run
whose time ran low. A continuation that fails is delivered again by SQS (after the
queue's visibility timeout; after maxReceiveCount it goes to the queue's DLQ).
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

from catalog_sync.app import current_app, refused, run_continuation, run_reindex_event
from catalog_sync.errors import RefusedError
from catalog_sync.observability import logger, metrics
from catalog_sync.sync.runs import ContinuationMessage
from catalog_sync.tracing import tracer

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _remaining(context: LambdaContext) -> float:
    return float(context.get_remaining_time_in_millis()) / 1000


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # responses can be large
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:  # the continuation queue

        def record_handler(record: SQSRecord) -> dict[str, Any]:
            message = ContinuationMessage.model_validate_json(record.body)
            return run_continuation(message, current_app(), _remaining(context))

        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    try:
        return run_reindex_event(event, current_app(), _remaining(context))
    except RefusedError as exc:
        return refused(exc)
