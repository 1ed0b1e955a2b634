"""The Adobe Commerce Optimizer target: wire models, IMS auth, pacing, the sink."""

from __future__ import annotations

from typing import Any

from catalog_sync.sinks.aco.factory import build_aco_sink
from catalog_sync.sinks.aco.sink import AcoSink


def build_sink(app: Any) -> AcoSink:
    """The ACO sink of an `App` (SAAS_TARGET=aco), from its settings and AWS clients."""
    return build_aco_sink(
        app.settings,
        secrets_client=app.client("secretsmanager"),
        dynamodb_client=app.client("dynamodb"),
    )
