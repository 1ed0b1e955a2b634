"""`AcoSink`: the ACO Data Ingestion API as a `FeedSink`.

`send(feed, items)` names the entity by the feed (`wire.entity`: "products",
"aco-products", ...). Each item's JSON is sent as it is: an item that is exactly the
entity's delete keys goes to the `/delete` endpoint, any other is an upsert (POST,
never PATCH). Deletions are sent before upserts, in batches of the entity's size,
gzip-compressed, with `Authorization: Bearer <IMS token>`; `batches(feed, stream)` cuts
a stream into the same requests (the export sends and records one at a time). Outcomes,
one per item:

- a product upsert over `wire.PRODUCT_MAX_BYTES` is `failed` with its size, never sent;
- 200: `sent`;
- 400 (the whole request rejected): the items named by `itemIndex` are `failed` with
  ACO's code, message and value; the rest of the batch is sent again in the same call
  (a 400 naming no item fails the batch);
- 401: the token is dropped and fetched again, once per call; a second 401, or 403:
  `AuthError` (nothing of that call counts as sent);
- 429, 5xx, timeouts, dropped connections: the project's one HTTP policy
  (`catalog_sync.http.RetryPolicy`): `retry-after` waited as given (one over the cap
  gives up), else backoff with full jitter, at most `max_tries` tries; then `retry`
  for that batch and the rest of the call (left pending). A repeat is safe: an
  upsert or delete of the same items applies once;
- pacing (`Pacer`): every try takes a request slot, and a product upsert takes its
  items' share of the products-per-minute budget first: when less is left, that
  many are sent now and the rest asks again. When the pacer says no, the rest of the
  call comes back `retry` with a reason starting "paced:", without waiting past the
  invocation, and `take_paced()` tells the caller when the budget frees up (the
  export hands the part back to the queue until then, and takes no more parts).
"""

from __future__ import annotations

import gzip
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol
from urllib.parse import urlsplit

import orjson
import requests

from catalog_sync.errors import AuthError, ConfigError, RetryableError
from catalog_sync.http import RetryPolicy, new_session, retry_after_seconds, try_post
from catalog_sync.observability import get_logger
from catalog_sync.ports import PACED, ItemOutcome, OutgoingItem
from catalog_sync.sinks.aco import wire

log = get_logger(__name__)

RETRYABLE = frozenset({408, 425, 500, 502, 503, 504})


class Tokens(Protocol):
    def token(self) -> str: ...

    def invalidate(self, token: str) -> None: ...


class Pacer(Protocol):
    """Shared pacing for one tenant. `acquire(k)` returns how many of k products may
    be sent now (for a request without products: 1), 0 when the budget is out; then
    `resume_at()` is when (epoch seconds) it frees up. The caller hands the items
    back instead of waiting."""

    def acquire(self, products: int = 0) -> int: ...

    def resume_at(self) -> float: ...


class _GiveUp(Exception):
    """Stop this call: the remaining items come back `retry` with this reason."""


class AcoSink:
    def __init__(
        self,
        base_url: str,
        tokens: Tokens,
        *,
        batch_sizes: dict[str, int] | None = None,
        pacer: Pacer | None = None,
        session: requests.Session | None = None,
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
            raise ConfigError(f"ACO_BASE_URL must be an http(s) URL, got {base_url!r}")
        if max_tries < 1:
            raise ConfigError("max_tries must be positive")
        self.base_url = base_url.rstrip("/")
        self._tokens = tokens
        self.batch_sizes = {e.name: e.batch_size for e in wire.ENTITIES.values()}
        for name, size in (batch_sizes or {}).items():
            if size < 1:
                raise ConfigError(f"the ACO batch size of {name} must be positive")
            self.batch_sizes[wire.entity(name).name] = size
        self._pacer = pacer
        self._paced_until: float | None = None
        self._session = session if session is not None else new_session()
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

    def close(self) -> None:
        self._session.close()

    def take_paced(self) -> float | None:
        """When (epoch seconds) the pacing budget that stopped a send since the last
        call frees up; None when no send was paced. Clears it."""
        until, self._paced_until = self._paced_until, None
        return until

    # -- FeedSink -------------------------------------------------------------------------

    def send(self, feed: str, items: Sequence[OutgoingItem]) -> list[ItemOutcome]:
        ent = wire.entity(feed)
        outcomes: list[ItemOutcome | None] = [None] * len(items)
        deletes: list[int] = []
        upserts: list[int] = []
        for i, item in enumerate(items):
            try:
                doc = orjson.loads(item.body)
            except orjson.JSONDecodeError:
                outcomes[i] = ItemOutcome("failed", "the item is not JSON")
                continue
            if not isinstance(doc, dict):
                outcomes[i] = ItemOutcome("failed", "the item is not a JSON object")
            elif item.deleted or wire.is_delete(ent, doc):
                deletes.append(i)
            elif ent is wire.PRODUCTS and len(item.body) > wire.PRODUCT_MAX_BYTES:
                outcomes[i] = ItemOutcome(
                    "failed",
                    f"product is {len(item.body)} bytes of JSON, over ACO's "
                    f"{wire.PRODUCT_MAX_BYTES}-byte limit per product; not sent",
                )
            else:
                upserts.append(i)
        size = self.batch_sizes[ent.name]
        batches = [
            (ent.delete_path, False, deletes[k : k + size]) for k in range(0, len(deletes), size)
        ]
        batches += [
            (ent.upsert_path, ent is wire.PRODUCTS, upserts[k : k + size])
            for k in range(0, len(upserts), size)
        ]
        call = _Call(items, outcomes)
        for number, (path, counts_products, batch) in enumerate(batches):
            try:
                self._send_batch(path, counts_products, batch, call)
            except _GiveUp as stop:
                reason = str(stop)
                for _, _, rest in batches[number:]:
                    for i in rest:
                        if outcomes[i] is None:
                            outcomes[i] = ItemOutcome("retry", reason)
                log.warning("ACO: items left for a later run: %s", reason, extra={"feed": feed})
                break
        return [o if o is not None else ItemOutcome("retry", "not sent") for o in outcomes]

    def batches(self, feed: str, items: Iterable[OutgoingItem]) -> Iterator[list[OutgoingItem]]:
        """The requests of a stream: deletions and upserts in batches of their own, of
        the entity's size, each sent as soon as it is full; the rest at the end,
        deletions first. (An item `send` fails without a request rides with upserts.)"""
        ent = wire.entity(feed)
        size = self.batch_sizes[ent.name]
        open_: dict[bool, list[OutgoingItem]] = {True: [], False: []}
        for item in items:
            batch = open_[_is_delete(ent, item)]
            batch.append(item)
            if len(batch) >= size:
                yield batch[:]
                batch.clear()
        for deletes in (True, False):
            if open_[deletes]:
                yield open_[deletes]

    # -- one batch ------------------------------------------------------------------------

    def _send_batch(self, path: str, counts_products: bool, batch: list[int], call: _Call) -> None:
        """Send a batch: in as many requests as the product budget allows, each sent
        again without the items a 400 names."""
        todo = list(batch)
        while todo:
            granted = self._pace(len(todo) if counts_products else 0)
            now, todo = (todo[:granted], todo[granted:]) if counts_products else (todo, [])
            todo = self._request(path, now, call) + todo

    def _pace(self, products: int) -> int:
        if self._pacer is None:
            return max(products, 1)
        granted = self._pacer.acquire(products)
        if granted < 1:
            resume = self._pacer.resume_at()
            self._paced_until = max(self._paced_until or 0.0, resume)
            raise _GiveUp(f"{PACED} the ACO request or product budget is used up for now")
        return granted

    def _request(self, path: str, batch: list[int], call: _Call) -> list[int]:
        """One request of `batch`, tried as the retry policy says: [] once accepted,
        the items to send again after a 400 that named others."""
        url = self.base_url + path
        raw = b"[" + b",".join(call.items[i].body for i in batch) + b"]"
        body = gzip.compress(raw, compresslevel=self.compresslevel, mtime=0)
        attempt = 0
        while True:
            attempt += 1
            try:
                token = self._tokens.token()
            except RetryableError as exc:  # IMS unreachable or 5xx: left pending
                raise _GiveUp(str(exc)) from None
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
            }
            resp, problem = try_post(
                self._session, url, data=body, headers=headers, timeout=self.timeout
            )
            retry_after: float | None = None
            if resp is not None:
                status = resp.status_code
                if status == 200:
                    for i in batch:
                        call.outcomes[i] = ItemOutcome("sent")
                    return []
                if status == 400:
                    return self._rejected(resp, batch, call.outcomes, path)
                if status == 401 and not call.refreshed:
                    call.refreshed = True
                    self._tokens.invalidate(token)
                    log.info("ACO answered 401; fetching a new IMS token once")
                    attempt -= 1
                    self._pace(0)
                    continue
                if status in (401, 403):
                    log.error("ACO refused the IMS token (HTTP %d)", status)
                    raise AuthError(
                        f"Adobe Commerce Optimizer refused the access token (HTTP {status}: "
                        f"{_auth_message(resp)}) at {url}; check the tenant id and the "
                        "Developer Console credentials"
                    )
                if status != 429 and status not in RETRYABLE and status < 500:
                    raise _GiveUp(f"unexpected HTTP {status} from {url}: {resp.text[:200]}")
                problem = f"HTTP {status}"
                retry_after = retry_after_seconds(resp.headers.get("retry-after"))
            self._wait(problem, retry_after, attempt)
            self._pace(0)  # the next try is a request too

    def _wait(self, problem: str, retry_after: float | None, attempt: int) -> None:
        delay = self.retry.wait(attempt, retry_after)
        if delay is None:
            if retry_after is not None and attempt < self.retry.max_tries:
                raise _GiveUp(f"{problem} with retry-after {retry_after:g}s (over the cap)")
            raise _GiveUp(f"{problem} after {attempt} tries")
        log.info(
            "ACO try %d/%d failed (%s); retrying in %.2fs",
            attempt,
            self.retry.max_tries,
            problem,
            delay,
        )
        self.retry.sleep(delay)

    def _rejected(
        self,
        resp: requests.Response,
        batch: list[int],
        outcomes: list[ItemOutcome | None],
        path: str,
    ) -> list[int]:
        """Fail the items a 400 names; return the rest, to send again."""
        try:
            doc = wire.Failed.model_validate_json(resp.content)
        except ValueError:
            doc = wire.Failed(message=resp.text[:300] or "HTTP 400")
        bad: dict[int, list[wire.ItemError]] = {}
        for err in doc.errors:
            if 0 <= err.itemIndex < len(batch):
                bad.setdefault(err.itemIndex, []).append(err)
        if not bad:
            for i in batch:
                outcomes[i] = ItemOutcome("failed", f"request rejected: {doc.message}")
            log.warning("ACO rejected a request naming no item: %s", doc.message)
            return []
        for index, errs in bad.items():
            reason = "; ".join(f"{e.code}: {e.message} (value {e.value!r})" for e in errs)
            outcomes[batch[index]] = ItemOutcome("failed", reason)
        log.warning(
            "ACO rejected %d of %d items at %s; sending the rest again",
            len(bad),
            len(batch),
            path,
        )
        return [i for n, i in enumerate(batch) if n not in bad]


def _is_delete(ent: wire.Entity, item: OutgoingItem) -> bool:
    if item.deleted:
        return True
    try:
        doc = orjson.loads(item.body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and wire.is_delete(ent, doc)


class _Call:
    """One `send` call: its items, their outcomes so far, whether the token was
    refreshed after a 401 (once per call)."""

    def __init__(self, items: Sequence[OutgoingItem], outcomes: list[ItemOutcome | None]) -> None:
        self.items = items
        self.outcomes = outcomes
        self.refreshed = False


def _auth_message(resp: requests.Response) -> str:
    try:
        doc = wire.AuthFailure.model_validate_json(resp.content)
    except ValueError:
        return resp.text[:200] or "no message"
    return f"{doc.title} {doc.error_code}: {doc.message}"
