"""Logging and metrics, in one place (Powertools)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "catalog-sync"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="CatalogSync", service=SERVICE)

__all__ = ["SERVICE", "MetricUnit", "logger", "metrics"]
