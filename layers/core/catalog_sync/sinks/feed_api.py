"""`HttpFeedSink`: the SaaS feed API client (`FeedSink`), per the SaaS feed API contract
(summarised in `catalogctl/receiver.py`).

`send(feed, items)` cuts the items into batches of at most `max_items` items and
`max_bytes` bytes of uncompressed JSON (the array of the items' bodies, joined as
they are), POSTs each gzip-compressed with a stable `x-request-id`, and returns one
`ItemOutcome` per item, in order (`batches(feed, stream)` cuts a stream the same way,
so the export can send and record one request at a time; each batch it cuts has its
body compressed and its id hashed on a thread of the sink's own as soon as it is cut,
and `send` of that batch posts them as they are: the export cuts the next request
while one is out, and neither the sending thread nor the export's does the
compression):

- 200: the items in `invalidFeedItems` are `failed` with the receiver's code and
  message, the rest `sent`;
- 400: the whole batch `failed` with the message;
- 401/403: `AuthError` (the key never appears in a message or a log);
- 413: the batch is split in halves and each is sent; a single item still too
  large is `failed`;
- 408, 425, 429, 5xx, timeouts and connection errors: retried with exponential
  backoff and full jitter (429/503 `Retry-After` honoured, seconds or HTTP date),
  at most `max_tries` tries, then `retry` with the reason. A `Retry-After` longer
  than `backoff_cap` is not waited for: the items come back `retry` at once. Once a
  batch has used all its tries, the rest of the call is not attempted (those items
  come back `retry` too), so a down API does not eat the whole Lambda timeout;
- any other status (a 404 from a wrong base URL, ...): `retry` with the reason,
  without further tries.
"""

from __future__ import annotations

import gzip
import hashlib
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote, urlsplit

import orjson
import requests

from catalog_sync.errors import AuthError, ConfigError
from catalog_sync.http import RetryPolicy, new_session, retry_after_seconds, try_post
from catalog_sync.observability import get_logger
from catalog_sync.ports import ItemOutcome, OutgoingItem

log = get_logger(__name__)

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_ARRAY_OVERHEAD = 2  # "[" and "]"
_SENT = ItemOutcome("sent")  # immutable: one for every item sent
T = TypeVar("T")


class _GiveUp(Exception):
    """A batch used all its tries: the rest of the call is not attempted."""


class _Encoded:
    """A request's body as it goes: its JSON's length, the gzip of it, its batch id."""

    __slots__ = ("body", "raw_bytes", "request_id")

    def __init__(self, raw_bytes: int, body: bytes, request_id: str) -> None:
        self.raw_bytes, self.body, self.request_id = raw_bytes, body, request_id


class _Cut(list[OutgoingItem]):
    """A batch as `batches` of `sink` cut it for `feed` (`size` items), its request
    being encoded (None: an item over the byte limit rides along, and `send` cuts the
    batch anew, as it does a cut that is not as it was cut)."""

    __slots__ = ("encoded", "feed", "sink", "size")
    encoded: Future[_Encoded] | None
    feed: str
    sink: HttpFeedSink
    size: int

    def ready(self, sink: HttpFeedSink, feed: str) -> _Encoded | None:
        """The encoded request, if this cut is `sink`'s, for `feed`, and as it was cut."""
        if self.encoded is None or self.sink is not sink or self.feed != feed:
            return None
        if len(self) != self.size:
            return None
        return self.encoded.result()


class HttpFeedSink:
    """POSTs feed items to `{base_url}/feeds/{feed}/{environment_id}`."""

    def __init__(
        self,
        base_url: str,
        environment_id: str,
        api_key_provider: Callable[[], str],
        *,
        session: requests.Session | None = None,
        max_items: int = 1000,
        max_bytes: int = 4 * 1024 * 1024,
        timeout: tuple[float, float] = (5, 30),
        max_tries: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        compresslevel: int = 1,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"the SaaS base URL must be an http(s) URL, got {base_url!r}")
        if not environment_id:
            raise ConfigError("the SaaS environment id is empty")
        if max_items < 1 or max_bytes < 16 or max_tries < 1:
            raise ConfigError("max_items, max_bytes and max_tries must be positive")
        self.base_url = base_url.rstrip("/")
        self.environment_id = environment_id
        self._api_key = api_key_provider
        self._session = session if session is not None else new_session()
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.retry = RetryPolicy(
            max_tries=max_tries,
            base=backoff_base,
            cap=backoff_cap,
            max_retry_after=backoff_cap,
            sleep=sleep,
            rng=rng,
        )
        self.compresslevel = compresslevel
        self._encoder: ThreadPoolExecutor | None = None  # started by the first cut

    def url(self, feed: str) -> str:
        return f"{self.base_url}/feeds/{quote(feed, safe='')}/{quote(self.environment_id, safe='')}"

    def close(self) -> None:
        self._session.close()
        if self._encoder is not None:
            self._encoder.shutdown(wait=True)
            self._encoder = None

    # -- FeedSink ---------------------------------------------------------------

    def send(self, feed: str, items: Sequence[OutgoingItem]) -> list[ItemOutcome]:
        outcomes: list[ItemOutcome | None] = [None] * len(items)
        url = self.url(feed)
        ready = items.ready(self, feed) if isinstance(items, _Cut) else None
        if ready is not None:
            batches = [list(range(len(items)))]  # as `_batches` cuts it: it was cut so
        else:
            batches = list(self._batches(items, outcomes))
        for number, batch in enumerate(batches):
            try:
                self._send_batch(feed, url, items, batch, outcomes, ready)
            except _GiveUp as stop:
                skipped = [i for b in batches[number + 1 :] for i in b]
                reason = f"not sent: the feed API was unavailable ({stop})"
                for i in skipped:
                    outcomes[i] = ItemOutcome("retry", reason)
                if skipped:
                    log.warning(
                        "feed API unavailable; %d items left for a later run",
                        len(skipped),
                        extra={"feed": feed, "items": len(skipped)},
                    )
                break
        return [o if o is not None else ItemOutcome("retry", "not sent") for o in outcomes]

    # -- batching -----------------------------------------------------------------

    def batches(self, feed: str, items: Iterable[OutgoingItem]) -> Iterator[list[OutgoingItem]]:
        """The requests `send` would make of a stream, cut as the stream comes (an item
        over the byte limit rides along: `send` fails it without a request)."""
        limit = self.max_bytes - _ARRAY_OVERHEAD  # as `_fits`
        sized = ((item, n if (n := len(item.body)) <= limit else 0) for item in items)
        for batch in self._cut(sized):
            cut = _Cut(batch)
            cut.feed, cut.sink, cut.size, cut.encoded = feed, self, len(batch), None
            if all(map(self._fits, batch)):
                if self._encoder is None:
                    self._encoder = ThreadPoolExecutor(1, thread_name_prefix="sink-encode")
                cut.encoded = self._encoder.submit(self._encode, feed, batch, range(len(batch)))
            yield cut

    def _batches(self, items: Sequence[OutgoingItem], outcomes: list[ItemOutcome | None]) -> Any:
        fitting = []
        for i, item in enumerate(items):
            if self._fits(item):
                fitting.append((i, len(item.body)))
            else:
                outcomes[i] = ItemOutcome(
                    "failed",
                    f"item is {len(item.body)} bytes of JSON, over the {self.max_bytes}-byte "
                    "request limit",
                )
        yield from self._cut(fitting)

    def _fits(self, item: OutgoingItem) -> bool:
        return len(item.body) + _ARRAY_OVERHEAD <= self.max_bytes

    def _cut(self, sized: Iterable[tuple[T, int]]) -> Iterator[list[T]]:
        """Batches of at most `max_items` things and `max_bytes` bytes of JSON array."""
        batch: list[T] = []
        size = _ARRAY_OVERHEAD
        for thing, n in sized:
            extra = n + (1 if batch else 0)
            if batch and (len(batch) >= self.max_items or size + extra > self.max_bytes):
                yield batch
                batch, size, extra = [], _ARRAY_OVERHEAD, n
            batch.append(thing)
            size += extra
        if batch:
            yield batch

    def batch_id(self, feed: str, items: Sequence[OutgoingItem], batch: Sequence[int]) -> str:
        """Stable id of a batch: the same items (scope + key + hash) always get the same id."""
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{feed}\x00{self.environment_id}\x00".encode())
        # scope \0 key \0 hash \1 per item, hashed in one go (UTF-8 of the joined text
        # is the joined UTF-8 of the parts: the same id as hashing them one by one)
        h.update(
            "".join(
                [f"{items[i].scope}\x00{items[i].key}\x00{items[i].hash}\x01" for i in batch]
            ).encode()
        )
        return h.hexdigest()

    # -- one batch ----------------------------------------------------------------

    def _encode(self, feed: str, items: Sequence[OutgoingItem], batch: Sequence[int]) -> _Encoded:
        raw = b"[" + b",".join(items[i].body for i in batch) + b"]"
        body = gzip.compress(raw, compresslevel=self.compresslevel, mtime=0)
        return _Encoded(len(raw), body, self.batch_id(feed, items, batch))

    def _send_batch(
        self,
        feed: str,
        url: str,
        items: Sequence[OutgoingItem],
        batch: list[int],
        outcomes: list[ItemOutcome | None],
        encoded: _Encoded | None = None,
    ) -> None:
        if encoded is None:
            encoded = self._encode(feed, items, batch)
        body, request_id = encoded.body, encoded.request_id
        ctx = {
            "feed": feed,
            "batch_id": request_id,
            "items": len(batch),
            "bytes": encoded.raw_bytes,
        }

        for attempt in range(1, self.retry.max_tries + 1):
            retry_after: float | None = None
            resp, problem = self._post(url, body, request_id)
            if resp is not None:
                status = resp.status_code
                if status == 200:
                    self._accepted(resp, batch, outcomes, ctx)
                    return
                code, message = _error_of(resp)
                if status == 400:
                    reason = f"HTTP 400 {code}: {message}" if code else f"HTTP 400: {message}"
                    for i in batch:
                        outcomes[i] = ItemOutcome("failed", f"batch rejected: {reason}")
                    log.warning("batch rejected: %s", reason, extra=ctx)
                    return
                if status in (401, 403):
                    log.error("feed API refused the API key (HTTP %d)", status, extra=ctx)
                    raise AuthError(
                        f"the SaaS feed API refused the API key (HTTP {status}"
                        f"{' ' + code if code else ''}) at {url}; check the configured key"
                    )
                if status == 413:
                    self._split(feed, url, items, batch, outcomes, f"{code} {message}".strip())
                    return
                if status not in RETRYABLE_STATUSES and status < 500:
                    reason = f"unexpected HTTP {status} from {url}: {message}"
                    for i in batch:
                        outcomes[i] = ItemOutcome("retry", reason)
                    log.error("unexpected response: %s", reason, extra=ctx)
                    return
                problem = f"HTTP {status}"
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))

            delay = self.retry.wait(attempt, retry_after)
            if delay is None:
                if attempt == self.retry.max_tries:
                    reason = f"{problem} after {attempt} tries"
                else:
                    reason = (
                        f"{problem} with Retry-After {retry_after:g}s (over the "
                        f"{self.retry.max_retry_after:g}s cap) after {attempt} tries"
                    )
                self._give_up(batch, outcomes, reason, ctx)
            log.info(
                "batch try %d/%d failed (%s); retrying in %.2fs",
                attempt,
                self.retry.max_tries,
                problem,
                delay,
                extra=ctx,
            )
            self.retry.sleep(delay)

    def _post(self, url: str, body: bytes, request_id: str) -> tuple[requests.Response | None, str]:
        """One POST of a batch: the response, or None and what went wrong on the way."""
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "x-api-key": self._api_key(),
            "x-request-id": request_id,
        }
        return try_post(self._session, url, data=body, headers=headers, timeout=self.timeout)

    def _give_up(
        self, batch: list[int], outcomes: list[ItemOutcome | None], reason: str, ctx: dict[str, Any]
    ) -> NoReturn:
        for i in batch:
            outcomes[i] = ItemOutcome("retry", reason)
        log.warning("batch left for a later run: %s", reason, extra=ctx)
        raise _GiveUp(reason)

    def _split(
        self,
        feed: str,
        url: str,
        items: Sequence[OutgoingItem],
        batch: list[int],
        outcomes: list[ItemOutcome | None],
        message: str,
    ) -> None:
        if len(batch) == 1:
            outcomes[batch[0]] = ItemOutcome(
                "failed",
                f"HTTP 413: the item alone is over the feed API's request limit ({message})",
            )
            log.warning("single item over the request limit", extra={"feed": feed})
            return
        half = len(batch) // 2
        log.info(
            "HTTP 413 for %d items; splitting",
            len(batch),
            extra={"feed": feed, "items": len(batch)},
        )
        try:
            self._send_batch(feed, url, items, batch[:half], outcomes)
        except _GiveUp as stop:
            for i in batch[half:]:
                outcomes[i] = ItemOutcome(
                    "retry", f"not sent: the feed API was unavailable ({stop})"
                )
            raise
        self._send_batch(feed, url, items, batch[half:], outcomes)

    def _accepted(
        self,
        resp: requests.Response,
        batch: list[int],
        outcomes: list[ItemOutcome | None],
        ctx: dict[str, Any],
    ) -> None:
        invalid: list[Any] = []
        try:
            data = orjson.loads(resp.content) if resp.content else {}
            if isinstance(data, dict) and isinstance(data.get("invalidFeedItems"), list):
                invalid = data["invalidFeedItems"]
            else:
                raise ValueError("no invalidFeedItems list")
        except ValueError:
            log.warning("HTTP 200 with an unreadable body; counting the batch as sent", extra=ctx)
        for i in batch:
            outcomes[i] = _SENT
        failed = 0
        for entry in invalid:
            index = entry.get("itemIndex") if isinstance(entry, dict) else None
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(batch):
                log.warning(
                    "invalidFeedItems entry without a valid itemIndex: %r", entry, extra=ctx
                )
                continue
            code = str(entry.get("code") or "invalid")
            message = str(entry.get("message") or "rejected by the feed API")
            outcomes[batch[index]] = ItemOutcome("failed", f"{code}: {message}")
            failed += 1
        log.debug("batch accepted (%d invalid)", failed, extra=ctx)


def _error_of(resp: requests.Response) -> tuple[str, str]:
    """`(code, message)` of an error response (JSON or not), short."""
    try:
        data = orjson.loads(resp.content)
    except ValueError:
        data = None
    if isinstance(data, dict):
        return str(data.get("code") or ""), str(data.get("message") or data.get("code") or "")[:500]
    text = resp.text.strip().replace("\n", " ")
    return "", (text[:200] or resp.reason or "no message")
