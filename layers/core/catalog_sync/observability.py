"""Logging and metrics, in one place (Powertools)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "catalog-sync"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="CatalogSync", service=SERVICE)
# X-Ray (the template sets Tracing: Active); off outside Lambda, e.g. in the local stack.
tracer = Tracer(service=SERVICE)

__all__ = ["SERVICE", "MetricUnit", "logger", "metrics", "tracer"]
