"""The project's error kinds. Adapters turn library errors into these."""

from __future__ import annotations


class CatalogSyncError(Exception):
    """Base of every error the project raises on purpose."""


class SourceError(CatalogSyncError):
    """The catalog source cannot be read at all (missing file, no `sku` column, ...)."""


class RejectedError(CatalogSyncError):
    """The SaaS API rejected a request for good: retrying the same data will not help."""


class RetryableError(CatalogSyncError):
    """A transient failure (throttling, 5xx, timeout, dropped connection)."""


class AuthError(CatalogSyncError):
    """The SaaS API refused the credentials (401/403): stop the run, mark nothing sent."""


class RefusedError(CatalogSyncError):
    """A request refused as it was asked (bad options, an unknown feed, a source outside
    the allow-list, a lease held by another run): the reindex handler answers it with
    a result (`{"status": "refused", "reason": ...}`), not a function error."""


class LeaseHeldError(RefusedError):
    """Another run holds the feed's lease."""

    def __init__(self, feed: str, holder: str, expires_at: str) -> None:
        super().__init__(
            f"a run of feed {feed!r} is already in progress: lease held by {holder} "
            f"until {expires_at}"
        )
        self.feed = feed
        self.holder = holder
        self.expires_at = expires_at


class ConflictError(CatalogSyncError):
    """A conditional write lost a race; re-read and try again."""


class NotFoundError(CatalogSyncError):
    """Something the run needs (a snapshot, a manifest, a feed) does not exist."""


class ConfigError(CatalogSyncError):
    """The configuration (environment, options) is wrong."""


class RequestError(ConfigError, RefusedError):
    """The request is wrong (its options, feed, source or ids): refused, not failed."""
