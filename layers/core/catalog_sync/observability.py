"""Logging and metrics, in one place (Powertools).

Logs: `logger` is the Powertools logger (JSON lines, with the Lambda context and
the keys a handler appends: `run_id`, `feed`). A module logs through
`get_logger(__name__)`: a child of that logger, so its lines have the same form,
keys and level.

Traces: `catalog_sync.tracing` (its own module: the X-Ray SDK and botocore it
imports take about a second, which a reindex worker process does not need).

Metrics: `metrics` sums what an invocation adds per feed and emits ONE value per
metric and feed when the handler ends (one EMF document per feed, with a `feed`
dimension), instead of one value per part. Nothing is printed when metrics are
disabled (`POWERTOOLS_METRICS_DISABLED`, as the CLI sets it) or when there is
nothing to publish.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE = "catalog-sync"
NAMESPACE = "CatalogSync"

logger = Logger(service=SERVICE)


def get_logger(name: str) -> logging.Logger:
    """A module's logger: a child of the Powertools logger (its handler, formatter,
    appended keys and level)."""
    return logging.getLogger(f"{SERVICE}.{name}")


def log_to_terminal(level: str | int) -> None:
    """For a CLI: log lines at `level` and above go to stderr, never into the
    command's own output on stdout."""
    logger.setLevel(level)
    handler = logger.registered_handler
    if isinstance(handler, logging.StreamHandler) and not isinstance(handler.stream, _Stderr):
        handler.setStream(_Stderr())


class _Stderr:
    """Whatever `sys.stderr` is when a line is written (a test runner swaps it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        with contextlib.suppress(ValueError):  # closed by whoever swapped it in
            sys.stderr.flush()


F = TypeVar("F", bound=Callable[..., Any])
_SUMMED = (MetricUnit.Count, MetricUnit.Seconds, MetricUnit.Milliseconds, MetricUnit.Bytes)


class InvocationMetrics:
    """Metrics of one invocation, aggregated per feed (`feed=None`: the service)."""

    def __init__(self, namespace: str = NAMESPACE, service: str = SERVICE) -> None:
        self.namespace = namespace
        self.service = service
        self._values: dict[str | None, dict[str, tuple[MetricUnit, float]]] = {}

    def add_metric(
        self,
        name: str,
        unit: MetricUnit,
        value: float,
        *,
        feed: str | None = None,
        total: bool = False,
    ) -> None:
        """Add `value` to this invocation's `name` for `feed` (counts and durations
        are summed; other units keep the largest value). `total`: also to the
        service's own figure (the `service` dimension only), which is what an alarm
        can watch: CloudWatch alarms cannot sum a metric over its `feed` dimension."""
        if total and feed is not None:
            self.add_metric(name, unit, value)
        values = self._values.setdefault(feed, {})
        seen = values.get(name)
        if seen is None:
            values[name] = (unit, float(value))
        elif unit in _SUMMED:
            values[name] = (unit, seen[1] + float(value))
        else:
            values[name] = (unit, max(seen[1], float(value)))

    def snapshot(self) -> dict[str | None, dict[str, float]]:
        """What would be published now (tests read it)."""
        return {f: {n: v for n, (_, v) in vs.items()} for f, vs in self._values.items()}

    def flush(self) -> None:
        values, self._values = self._values, {}
        if is_metrics_disabled():
            return
        for feed, named in values.items():
            if not named:
                continue
            emf = EphemeralMetrics(namespace=self.namespace, service=self.service)
            if feed is not None:
                emf.add_dimension(name="feed", value=feed)
            for name, (unit, value) in named.items():
                emf.add_metric(name=name, unit=unit, value=value)
            emf.flush_metrics()

    def log_metrics(self, handler: F) -> F:
        """Handler decorator: publish what the invocation added when it ends."""

        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return handler(*args, **kwargs)
            finally:
                self.flush()

        return wrapper  # type: ignore[return-value]


metrics = InvocationMetrics()

__all__ = [
    "NAMESPACE",
    "SERVICE",
    "InvocationMetrics",
    "MetricUnit",
    "get_logger",
    "log_to_terminal",
    "logger",
    "metrics",
]
