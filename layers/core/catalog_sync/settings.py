"""Environment settings, checked once at cold start (a pydantic model)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from catalog_sync.errors import ConfigError
from catalog_sync.sources.inventory import parse_stocks


class Settings(BaseModel):
    """Every setting is an environment variable of the same name in upper case."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    snapshot_bucket: str = Field(min_length=1)
    state_table: str = Field(min_length=1)
    export_queue_url: str = Field(min_length=1)
    export_dlq_url: str | None = None  # the export queue's dead-letter queue (status, redrive)
    saas_base_url: str = ""  # commerce-services target: required
    saas_environment_id: str = ""  # commerce-services target: required
    saas_api_key_secret_id: str | None = None  # Secrets Manager secret name or ARN
    saas_api_key_parameter: str | None = None  # or an SSM SecureString parameter name
    catalog_source: str | None = None  # path, s3://bucket/key (export CSV), https://shop (REST)
    # the "Stock Sources" export (MSI) of an export-CSV source: path or s3://bucket/key;
    # unset: `stock_sources.csv` beside a local catalog file, if there is one
    catalog_stock_sources: str | None = None
    inventory_stocks: str = ""  # MSI stocks: 1=default:base;2=eu_a+eu_b:eu (export CSV only)
    magento_token_secret_id: str | None = None  # REST source: bearer token in Secrets Manager
    magento_token_parameter: str | None = None  # or in an SSM SecureString parameter
    magento_page_size: int = Field(default=100, ge=1, le=1000)
    magento_concurrency: int = Field(default=4, ge=1, le=32)
    magento_max_tries: int = Field(default=5, ge=1)
    magento_full_read_hours: float = Field(default=24, gt=0)  # a full read finds deletions
    store_views: str = "default:base"  # storeViewCode:websiteCode, comma-separated
    feeds: str = ""  # feeds the hourly sync covers (empty: the target's default feeds)
    state_buckets: int = Field(default=64, ge=1, le=4096)
    saas_max_items: int = Field(default=1000, ge=1)
    saas_max_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    saas_max_tries: int = Field(default=5, ge=1)
    saas_timeout_seconds: float = Field(default=30.0, gt=0)
    lease_seconds: int = Field(default=900, ge=10)
    stale_pending_seconds: int = Field(default=1800, ge=60)  # resend re-queues older pending items
    secret_max_age_seconds: int = Field(default=300, ge=0)
    work_dir: str | None = None  # scratch space for spills (Lambda: /tmp)
    # processes that build a large export CSV's items (0: one per CPU, at most 4; 1: none)
    reindex_workers: int = Field(default=0, ge=0, le=64)
    # --- sources an event may name (issue 10: the source is fixed at deploy time) ---
    # comma-separated s3://bucket/prefix/ or folder entries; empty: CATALOG_SOURCE's folder
    catalog_source_allow: str | None = None
    # --- runs across invocations (issue 10): a run whose time runs low hands itself on ---
    continue_queue_url: str | None = None  # the reindex function's continuation queue
    # an invocation's time for a run; default: the Lambda context's remaining time less
    # RUN_TIME_MARGIN_SECONDS (0: hand on at every step, for tests)
    run_time_budget_seconds: float | None = Field(default=None, ge=0)
    run_time_margin_seconds: float = Field(default=120, ge=0)
    # the continuation queue's visibility timeout (template.yaml sets both): a run's
    # lease between continuations outlives it (sync/lease.py, handed_on_ttl)
    continue_visibility_seconds: int = Field(default=960, ge=0, le=43_200)
    # --- the mass-deletion guard (sync/guard.py): more deletions than this are held ---
    max_delete_fraction: float = Field(default=0.1, ge=0, le=1)  # of a feed's live items
    max_deletes: int | None = Field(default=None, ge=0)  # and at most this many (None: no bound)
    # a sync that meets the lease of a resend (seconds long) waits this long for it
    lease_wait_seconds: float = Field(default=120, ge=0, le=600)
    # finished run records and part results expire (DynamoDB TTL) after this many days
    run_retention_days: int = Field(default=90, ge=1)

    # -- target: which SaaS service the catalog goes to (see catalog_sync.targets) --------
    saas_target: Literal["commerce-services", "aco"] = "commerce-services"
    store_view_locales: str = ""  # ACO: storeViewCode:locale pairs (default: the view code)
    website_currencies: str = ""  # ACO price books: websiteCode:currency pairs (default USD)
    media_base_url: str | None = None  # ACO image URLs: prefix of the exported image paths
    # a part whose prerequisite feed is still exporting goes back to the queue this late
    export_requeue_delay_seconds: int = Field(default=10, ge=0, le=900)
    # pending items one export message carries at most (the reindex packs buckets into
    # messages up to this, so a request is filled across buckets; a larger bucket goes alone)
    export_message_items: int = Field(default=50_000, ge=1)
    # (RUN_TIME_BUDGET_SECONDS, above, also bounds an export invocation: it hands its
    # unfinished buckets back to the queue when it runs low)

    @field_validator("inventory_stocks")
    @classmethod
    def _check_stocks(cls, v: str) -> str:
        try:
            parse_stocks(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("store_view_locales", "website_currencies")
    @classmethod
    def _check_pairs(cls, v: str) -> str:
        for pair in filter(None, (p.strip() for p in v.split(","))):
            code, sep, value = pair.partition(":")
            if not code or not sep or not value:
                raise ValueError(f"expected code:value pairs, got {pair!r}")
        return v

    def locale_pairs(self) -> list[tuple[str, str]]:
        return _pairs(self.store_view_locales)

    def currency_pairs(self) -> list[tuple[str, str]]:
        return _pairs(self.website_currencies)

    # --- Adobe Commerce Optimizer target: wire, IMS auth, pacing (sinks/aco/) -------------
    aco_tenant_id: str | None = None
    aco_region: Literal["na1", "eu1", "uk1", "au1", "in1", "sg1"] = "na1"
    aco_environment: Literal["sandbox", "production"] = "production"
    aco_base_url: str | None = None  # override (emulator, tests); default from region/tenant
    aco_ims_url: str = "https://ims-na1.adobelogin.com/ims/token/v3"
    aco_credentials_secret_id: str | None = None  # JSON {"clientId", "clientSecret"}
    aco_batch_size: int = Field(default=100, ge=1)  # metadata, categories, products
    aco_price_batch_size: int = Field(default=500, ge=1)  # price books, prices
    aco_max_requests_per_second: int = Field(default=2, ge=1)  # per tenant, all invocations
    aco_max_products_per_minute: int | None = Field(default=None, ge=1)  # license; base 1000
    aco_pacing_max_wait_seconds: float = Field(default=5.0, ge=0)

    def aco_url(self) -> str:
        """ACO_BASE_URL, else Adobe's URL for the region, environment and tenant."""
        if self.aco_base_url:
            return self.aco_base_url.rstrip("/")
        if not self.aco_tenant_id:
            raise ConfigError("set ACO_TENANT_ID (or ACO_BASE_URL) for the aco target")
        if self.aco_environment == "sandbox" and self.aco_region != "na1":
            raise ConfigError("ACO sandboxes exist in na1 only: set ACO_REGION=na1")
        host = self.aco_region + ("-sandbox" if self.aco_environment == "sandbox" else "")
        return f"https://{host}.api.commerce.adobe.com/{self.aco_tenant_id}"

    # --- end of the ACO group ---------------------------------------------------------------

    @field_validator("max_deletes", mode="before")
    @classmethod
    def _no_bound(cls, v: object) -> object:
        return None if v == "" else v  # MAX_DELETES="" is no absolute bound

    @field_validator("store_views")
    @classmethod
    def _check_store_views(cls, v: str) -> str:
        for pair in v.split(","):
            code, sep, website = pair.strip().partition(":")
            if not code or not sep or not website:
                raise ValueError(f"expected storeViewCode:websiteCode pairs, got {pair!r}")
        return v

    @model_validator(mode="after")
    def _one_key_source(self) -> Settings:
        if self.saas_target != "commerce-services":
            return self  # the ACO target checks its own settings (catalog_sync.targets)
        if not (self.saas_base_url and self.saas_environment_id):
            raise ValueError("set SAAS_BASE_URL and SAAS_ENVIRONMENT_ID")
        if not (self.saas_api_key_secret_id or self.saas_api_key_parameter):
            raise ValueError("set SAAS_API_KEY_SECRET_ID or SAAS_API_KEY_PARAMETER")
        return self

    def store_view_pairs(self) -> list[tuple[str, str]]:
        out = []
        for pair in self.store_views.split(","):
            code, _, website = pair.strip().partition(":")
            out.append((code, website))
        return out

    def feed_names(self) -> list[str]:
        names = [f.strip() for f in self.feeds.split(",") if f.strip()]
        if names:
            return names
        from catalog_sync.targets import default_feeds

        return default_feeds(self.saas_target)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data = {name: env[name.upper()] for name in cls.model_fields if name.upper() in env}
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{str(e['loc'][0]).upper() if e['loc'] else 'settings'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigError(f"bad configuration: {problems}") from None


def _pairs(value: str) -> list[tuple[str, str]]:
    out = []
    for pair in filter(None, (p.strip() for p in value.split(","))):
        code, _, v = pair.partition(":")
        out.append((code.strip(), v.strip()))
    return out
