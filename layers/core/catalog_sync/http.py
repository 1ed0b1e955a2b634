"""The one HTTP retry policy of the project's clients (the feed API sink, the Magento
REST client).

- What is retried is the caller's call: timeouts, dropped connections, 429 and 5xx.
  A request is retried only when a repeat cannot apply twice: GETs, and POSTs that are
  idempotent by design (a feed batch carries a stable `x-request-id`, so the API
  recognises a repeat). Sessions are built with urllib3's own retries off, so nothing
  below us re-sends behind the policy's back.
- Backoff is exponential with full jitter (`base * 2**(try-1)`, capped, times a random
  factor), so concurrent clients spread out.
- A `Retry-After` (seconds, or an HTTP date, with or without a zone) is waited as
  given; one longer than `max_retry_after` ends the tries instead of sleeping past the
  caller's budget (the work is left for a later run).
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import requests
from requests.adapters import HTTPAdapter

from catalog_sync.errors import ConfigError


@dataclass
class RetryPolicy:
    max_tries: int = 5
    base: float = 0.5  # seconds: the first backoff's upper bound
    cap: float = 20.0  # seconds: no backoff is longer
    max_retry_after: float = 20.0  # seconds: a longer Retry-After gives up
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    rng: Callable[[], float] = field(default=random.random, repr=False)

    def __post_init__(self) -> None:
        if self.max_tries < 1:
            raise ValueError("max_tries must be >= 1")

    def wait(self, attempt: int, retry_after: float | None = None) -> float | None:
        """The delay before the try after `attempt` (1-based), or None when there is
        none: the tries are used up, or the server asked for more than `max_retry_after`."""
        if attempt >= self.max_tries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return self.rng() * min(self.cap, self.base * 2 ** (attempt - 1))


def new_session(pool_maxsize: int = 16) -> requests.Session:
    """A pooled session whose transport never retries on its own (the policy does)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def try_post(
    session: requests.Session,
    url: str,
    *,
    data: bytes,
    headers: dict[str, str],
    timeout: tuple[float, float],
) -> tuple[requests.Response | None, str]:
    """One POST, no redirects and no retry of its own (the caller's policy decides):
    the response, or None and what went wrong on the way (a timeout, a dropped
    connection, a broken response). A URL that cannot be requested is a ConfigError."""
    try:
        resp = session.post(url, data=data, headers=headers, timeout=timeout, allow_redirects=False)
    except requests.Timeout:
        return None, "timeout"
    except requests.ConnectionError as exc:
        return None, f"connection error ({root_cause(exc)})"
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
        raise ConfigError(f"the URL {url} is not valid: {exc}") from None
    except requests.RequestException as exc:  # broken response, decoding, ...
        return None, f"request failed ({type(exc).__name__})"
    return resp, ""


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def root_cause(exc: BaseException) -> str:
    """The innermost cause's class name (urllib3 wraps it in `reason` and `args`)."""
    seen: set[int] = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in current.args if isinstance(a, BaseException)), None)
        if inner is None:
            inner = current.__cause__ or current.__context__
        if inner is None:
            break
        current = inner
    return type(current).__name__
