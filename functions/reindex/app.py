"""Reindex function: the hourly schedule and resyncs.

Events: the EventBridge scheduled event (= `{"action": "sync"}`) or
`{"action": "resync", "feed": "products", "noReindex": false, "byIds": [...]}`.
A refused request (bad options, an unknown feed, a refused source, a lease held by
another run) is answered with `{"status": "refused", "reason": ...}`, not an error.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from catalog_sync.app import current_app, refused, run_reindex_event
from catalog_sync.errors import RefusedError
from catalog_sync.observability import logger, metrics, tracer


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # responses can be large
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return run_reindex_event(event, current_app())
    except RefusedError as exc:
        return refused(exc)
