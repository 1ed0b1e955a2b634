"""Build the ACO sink from the settings (the aco target's wiring calls this)."""

from __future__ import annotations

from typing import Any

from catalog_sync.aws.pacing import DynamoPacer
from catalog_sync.aws.secrets import json_secret_provider
from catalog_sync.errors import ConfigError
from catalog_sync.settings import Settings
from catalog_sync.sinks.aco.auth import ImsTokens
from catalog_sync.sinks.aco.sink import AcoSink


def build_aco_sink(
    settings: Settings,
    *,
    secrets_client: Any,
    dynamodb_client: Any,
    pacing_window_seconds: int = 60,
) -> AcoSink:
    """The sink of the ACO_* settings. `pacing_window_seconds`: the window of the
    products-per-minute budget (60; tests shorten it, so that a spread-out load
    takes seconds, not minutes)."""
    if not settings.aco_credentials_secret_id:
        raise ConfigError("set ACO_CREDENTIALS_SECRET_ID (a JSON {clientId, clientSecret} secret)")
    credentials = json_secret_provider(
        secret_id=settings.aco_credentials_secret_id,
        fields=("clientId", "clientSecret"),
        max_age=settings.secret_max_age_seconds,
        secrets_client=secrets_client,
        name="ACO client credentials",
    )
    base_url = settings.aco_url()
    tenant = settings.aco_tenant_id or base_url
    pacer = DynamoPacer(
        dynamodb_client,
        settings.state_table,
        tenant,
        max_rps=settings.aco_max_requests_per_second,
        max_products_per_minute=settings.aco_max_products_per_minute,
        max_wait=settings.aco_pacing_max_wait_seconds,
        window_seconds=pacing_window_seconds,
    )
    small, large = settings.aco_batch_size, settings.aco_price_batch_size
    return AcoSink(
        base_url,
        ImsTokens(credentials, ims_url=settings.aco_ims_url),
        batch_sizes={
            "metadata": small,
            "categories": small,
            "products": small,
            "price-books": large,
            "prices": large,
        },
        pacer=pacer,
        timeout=(5, settings.saas_timeout_seconds),
        max_tries=settings.saas_max_tries,
    )
