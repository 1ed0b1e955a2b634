"""Adobe IMS OAuth server-to-server: an access token for the ACO Data Ingestion API.

`ImsTokens.token()` returns a cached token, fetching one (form POST of client id,
secret, `grant_type=client_credentials` and the ingestion scope to the IMS token URL)
when there is none or it expires within `refresh_margin` (5 minutes). The cache is
module-level, keyed by IMS URL and client id, so warm Lambda invocations reuse it.
`invalidate(token)` drops a token the API refused (a 401), so the next `token()`
fetches a new one. The client secret is never logged and never part of an error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from catalog_sync.errors import AuthError, RetryableError

log = logging.getLogger(__name__)

DEFAULT_IMS_URL = "https://ims-na1.adobelogin.com/ims/token/v3"
SCOPE = "openid,AdobeID,commerce.aco.ingestion,email,profile"
REFRESH_MARGIN = 300.0  # seconds before expiry a token is replaced


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float  # monotonic-independent wall clock (time.time())


_CACHE: dict[tuple[str, str], Token] = {}
_LOCK = threading.Lock()


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


class ImsTokens:
    """Tokens for one client. `credentials()` returns `{"clientId", "clientSecret"}`."""

    def __init__(
        self,
        credentials: Callable[[], dict[str, str]],
        *,
        ims_url: str = DEFAULT_IMS_URL,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (5, 30),
        refresh_margin: float = REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self.ims_url = ims_url
        self._session = session if session is not None else requests.Session()
        self.timeout = timeout
        self.refresh_margin = refresh_margin
        self._clock = clock
        self.fetches = 0  # tokens fetched by this object (tests, logs)

    def token(self) -> str:
        creds = self._credentials()
        key = (self.ims_url, creds["clientId"])
        with _LOCK:
            cached = _CACHE.get(key)
            if cached is not None and cached.expires_at - self.refresh_margin > self._clock():
                return cached.value
            fresh = self._fetch(creds)
            _CACHE[key] = fresh
            return fresh.value

    def invalidate(self, token: str) -> None:
        """Forget `token` (the API answered 401 to it)."""
        with _LOCK:
            for key, cached in list(_CACHE.items()):
                if cached.value == token:
                    del _CACHE[key]

    def _fetch(self, creds: dict[str, str]) -> Token:
        form = {
            "client_id": creds["clientId"],
            "client_secret": creds["clientSecret"],
            "grant_type": "client_credentials",
            "scope": SCOPE,
        }
        try:
            resp = self._session.post(self.ims_url, data=form, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RetryableError(
                f"cannot reach the IMS token endpoint {self.ims_url}: {type(exc).__name__}"
            ) from None
        if resp.status_code in (400, 401, 403):
            log.error("IMS refused the ACO client credentials (HTTP %d)", resp.status_code)
            raise AuthError(
                f"Adobe IMS refused the client credentials (HTTP {resp.status_code}) at "
                f"{self.ims_url}; check the clientId/clientSecret in the credentials secret"
            )
        if resp.status_code != 200:
            raise RetryableError(f"IMS token endpoint answered HTTP {resp.status_code}")
        try:
            doc = resp.json()
            value, expires_in = doc["access_token"], float(doc["expires_in"])
        except (ValueError, KeyError, TypeError):
            raise RetryableError(
                "IMS token endpoint answered without access_token/expires_in"
            ) from None
        if not isinstance(value, str) or not value:
            raise RetryableError("IMS token endpoint answered an empty access_token")
        self.fetches += 1
        log.info("fetched an IMS access token (valid %.0fs)", expires_in)
        return Token(value, self._clock() + expires_in)
