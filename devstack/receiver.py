"""The local SaaS feed receiver: a real HTTP server implementing the feed API
(the SaaS feed API contract, summarised below) for the demo, the tests and the benchmarks.

Feed API: `POST /feeds/{feed}/{environment_id}`, a JSON array of items, gzip or
plain, with `x-api-key` (missing: 401, wrong: 403) and `x-request-id` (a repeat of a
fully accepted batch is answered as accepted and not applied again). Over the
limits (items, bytes of uncompressed JSON): 413 `items_limit_exceeded`. A body that
is not a gzip/JSON array: 400. Each item needs its feed's identity fields, a boolean
`deleted` and an ISO 8601 `modifiedAt`; an item that lacks them comes back in
`invalidFeedItems` and the rest are applied.

State: one current version per identity per (feed, environment). A deleted item
removes the identity (no tombstone is kept); the last accepted version wins.

Own routes (no key needed): `GET /_state/{feed}/{environment_id}`
(`{"feed", "environmentId", "count", "items": [...]}`), `GET /_stats`, `POST /_faults`
(a fault plan; plans queue up), `DELETE /_faults`, `DELETE /_state` (forget state,
remembered batch ids and stats), `GET /_health`.

Fault plans (`POST /_faults`, one JSON object):
- `{"status": 503, "times": 2}`: the next 2 feed requests get HTTP 503
  (any 4xx/5xx; 413 answers `items_limit_exceeded`, 429 may add `"retry_after": 1`);
- `{"latency_ms": 200}`: wait 200 ms, then answer normally (or with `status`);
- `{"drop_connection": 1}`: close the socket without answering, once (the number
  is how many requests);
- `{"reject": {"sku": ["MH01-XS-Black"]}}`: items with those values come back as
  `invalidFeedItems` until the faults are cleared (this one does not queue).
`times` (default 1) counts feed requests; the queued plans apply in order.

Python API: `FeedReceiver(...)`, `.start()` / `.stop()` (or `with`), `.url`,
`.state(feed, env)`, `.stats()`, `.add_fault(plan)`, `.clear_faults()`, `.reset()`.
Standalone: `python -m devstack.receiver --port 8787 --api-key KEY`.
"""

from __future__ import annotations

import contextlib
import gc
import hmac
import os
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import click
import orjson
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

from devstack.httpserver import HttpServer, Request, Response, drop_connection, json_response
from devstack.receiver_rules import (
    IDENTITY,
    FaultPlanError,
    QueuedFault,
    parse_fault_plan,
    validate_items,
)

__all__ = ["IDENTITY", "FaultPlanError", "FeedReceiver", "parse_fault_plan", "validate_items"]

DEFAULT_MAX_ITEMS = 1000
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
MAX_REMEMBERED_BATCHES = 200_000


def _counter() -> dict[str, int]:
    return {}


@dataclass
class _Stats:
    requests: dict[str, int] = field(default_factory=_counter)
    items: dict[str, int] = field(default_factory=_counter)
    bytes: dict[str, int] = field(default_factory=_counter)

    def add(self, status: str, wire_bytes: int, uncompressed: int, items: dict[str, int]) -> None:
        for d, k, n in (
            (self.requests, "total", 1),
            (self.requests, status, 1),
            (self.bytes, "total", wire_bytes),
            (self.bytes, status, wire_bytes),
            (self.bytes, "uncompressed", uncompressed),
        ):
            d[k] = d.get(k, 0) + n
        for k, n in items.items():
            self.items[k] = self.items.get(k, 0) + n

    def as_json(self) -> dict[str, Any]:
        items = {"received": 0, "accepted": 0, "invalid": 0, "duplicate": 0, "refused": 0}
        items.update(self.items)
        return {
            "requests": {"total": 0, **self.requests},
            "items": items,
            "bytes": {"total": 0, "uncompressed": 0, **self.bytes},
        }


class _Reply(Exception):
    """Answer the current request with this status and JSON body."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(status: int, code: str, message: str) -> _Reply:
    return _Reply(status, {"code": code, "message": message})


class FeedReceiver:
    """The local feed receiver. Thread-safe; `port=0` picks a free port."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "local-api-key",
        max_items: int = DEFAULT_MAX_ITEMS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if not api_key:
            raise ValueError("the receiver needs an API key")
        if max_items < 1 or max_bytes < 2:
            raise ValueError("max_items and max_bytes must be positive")
        self.api_key = api_key
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # Held items as their JSON (views into one buffer per request, `_pack`): a
        # large state of dicts would make every garbage collection walk it.
        self._state: dict[tuple[str, str], dict[tuple[Any, ...], memoryview]] = {}
        self._accepted_batches: dict[tuple[str, str, str], None] = {}
        self._stats = _Stats()
        self._feed_stats: dict[str, _Stats] = {}
        self._plans: deque[QueuedFault] = deque()
        self._reject: dict[str, frozenset[str]] = {}
        self._http = HttpServer(
            Request.application(partial(_route, self)),
            host,
            port,
            name="feed-receiver",
            server_version="catalog-sync-feed-receiver/1",
        )

    # -- lifecycle ---------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._http.host

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> FeedReceiver:
        self._http.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread (until KeyboardInterrupt)."""
        self._http.serve_forever()

    def stop(self) -> None:
        self._http.stop()

    def __enter__(self) -> FeedReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- direct accessors ----------------------------------------------------------

    def state(self, feed: str, environment_id: str) -> list[dict[str, Any]]:
        """The current items of a feed in an environment (deleted ones are gone)."""
        return [orjson.loads(b) for b in self._held(feed, environment_id)]

    def _held(self, feed: str, environment_id: str) -> list[memoryview]:
        with self._lock:
            return list(self._state.get((feed, environment_id), {}).values())

    def stats(self) -> dict[str, Any]:
        """`{"requests": {"total", "<status>"...}, "items": {"received", "accepted",
        "invalid", "duplicate", "refused"}, "bytes": {"total", "uncompressed",
        "<status>"...}, "feeds": {feed: {same three}}}`. `<status>` is the HTTP status
        answered, or "dropped"."""
        with self._lock:
            out = self._stats.as_json()
            out["feeds"] = {f: s.as_json() for f, s in self._feed_stats.items()}
            return out

    def add_fault(self, plan: dict[str, Any]) -> None:
        """Queue a fault plan (see the module docstring); raises `FaultPlanError`."""
        queued, reject = parse_fault_plan(plan)
        with self._lock:
            if queued is not None:
                self._plans.append(queued)
            for name, values in reject.items():
                self._reject[name] = self._reject.get(name, frozenset()) | values

    def clear_faults(self) -> None:
        with self._lock:
            self._plans.clear()
            self._reject = {}

    def reset(self) -> None:
        """Forget every item, every remembered batch id and the stats."""
        with self._lock:
            self._state.clear()
            self._accepted_batches.clear()
            self._stats = _Stats()
            self._feed_stats = {}

    # -- request handling (called by the handler threads) -------------------------

    def _next_plan(self) -> QueuedFault | None:
        with self._lock:
            if not self._plans:
                return None
            plan = self._plans[0]
            plan.remaining -= 1
            if plan.remaining <= 0:
                self._plans.popleft()
            return plan

    def _record(
        self, feed: str | None, status: str, wire: int, uncompressed: int, items: dict[str, int]
    ) -> None:
        with self._lock:
            self._stats.add(status, wire, uncompressed, items)
            if feed is not None:
                self._feed_stats.setdefault(feed, _Stats()).add(status, wire, uncompressed, items)

    def _check_key(self, given: str | None) -> None:
        if not given:
            raise _error(401, "missing_api_key", "the x-api-key header is required")
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            raise _error(403, "invalid_api_key", "the API key is not valid")

    def _decode(self, raw: bytes, encoding: str) -> bytes:
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            if len(raw) > self.max_bytes:
                raise self._too_large(f"the body is {len(raw)} bytes")
            return raw
        if encoding not in ("gzip", "x-gzip"):
            raise _error(400, "malformed_body", f"unsupported Content-Encoding {encoding!r}")
        inflater = zlib.decompressobj(wbits=31)
        try:
            data = inflater.decompress(raw, self.max_bytes + 1)
            if len(data) <= self.max_bytes and not inflater.unconsumed_tail:
                data += inflater.flush()
        except zlib.error as exc:
            raise _error(400, "malformed_body", f"the body is not valid gzip: {exc}") from None
        if len(data) > self.max_bytes or inflater.unconsumed_tail:
            raise self._too_large("the uncompressed body is larger")
        if not inflater.eof:
            raise _error(400, "malformed_body", "the gzip body is truncated")
        return data

    def _too_large(self, what: str) -> _Reply:
        return _error(
            413,
            "items_limit_exceeded",
            f"{what} than the limit of {self.max_bytes} bytes of uncompressed JSON",
        )

    def _ingest(
        self, feed: str, env: str, request_id: str | None, data: bytes, counts: dict[str, int]
    ) -> dict[str, Any]:
        try:
            items = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise _error(400, "malformed_body", f"the body is not valid JSON: {exc}") from None
        if not isinstance(items, list):
            raise _error(400, "malformed_body", "the body must be a JSON array of feed items")
        counts["received"] = len(items)
        if len(items) > self.max_items:
            counts["refused"] = len(items)
            raise _error(
                413,
                "items_limit_exceeded",
                f"{len(items)} items is more than the limit of {self.max_items} per request",
            )
        batch = (feed, env, request_id) if request_id else None
        with self._lock:
            if batch is not None and batch in self._accepted_batches:
                counts["duplicate"] = len(items)
                return {"invalidFeedItems": []}
            reject = self._reject
        valid, invalid = validate_items(feed, items, reject)
        kept = _pack([item for _, item in valid if not item["deleted"]])
        with self._lock:
            if batch is not None and batch in self._accepted_batches:
                counts["duplicate"] = len(items)
                return {"invalidFeedItems": []}
            held = self._state.setdefault((feed, env), {})
            for key, item in valid:
                if item["deleted"]:
                    held.pop(key, None)
                else:
                    held[key] = next(kept)
            if batch is not None and not invalid:
                self._accepted_batches[batch] = None
                if len(self._accepted_batches) > MAX_REMEMBERED_BATCHES:
                    del self._accepted_batches[next(iter(self._accepted_batches))]
        counts["accepted"] = len(valid)
        counts["invalid"] = len(invalid)
        return {"invalidFeedItems": invalid}


def _route(receiver: FeedReceiver, request: Request) -> Response:
    try:
        endpoint, args = _ROUTES.bind_to_environ(request.environ).match()
    except HTTPException:
        return _reply(_error(404, "not_found", f"no route {request.method} {request.path}"))
    return endpoint(receiver, request, **args)


def _post_faults(receiver: FeedReceiver, request: Request) -> Response:
    try:
        _read_body(receiver, request)
        try:
            plan = orjson.loads(request.get_data())
            receiver.add_fault(plan)
        except (orjson.JSONDecodeError, FaultPlanError) as exc:
            raise _error(400, "invalid_fault_plan", str(exc)) from None
        return _reply(_Reply(200, {"queued": plan}))
    except _Reply as reply:
        return _reply(reply)


def _pack(items: list[dict[str, Any]]) -> Iterator[memoryview]:
    """The JSON of each item, as views into one buffer for the whole request: half a
    million held items as small objects of their own left most of the receiver's
    memory fragmented between them (5.4 GB for 1 GB of JSON), and first-touched
    memory is what costs here."""
    parts = [orjson.dumps(item) for item in items]
    buffer = memoryview(b"".join(parts))
    start = 0
    for part in parts:
        end = start + len(part)
        yield buffer[start:end]
        start = end


def _get_state(receiver: FeedReceiver, request: Request, feed: str, env: str) -> Response:
    if feed not in IDENTITY:
        return _reply(_error(404, "unknown_feed", f"unknown feed {feed!r}"))
    held = receiver._held(feed, env)
    items = orjson.Fragment(b"[%s]" % b",".join(held))
    return json_response(
        200, {"feed": feed, "environmentId": env, "count": len(held), "items": items}
    )


def _get_stats(receiver: FeedReceiver, request: Request) -> Response:
    return json_response(200, receiver.stats())


def _get_health(receiver: FeedReceiver, request: Request) -> Response:
    return json_response(200, {"ok": True})


def _delete_state(receiver: FeedReceiver, request: Request) -> Response:
    receiver.reset()
    return json_response(200, {"reset": True})


def _delete_faults(receiver: FeedReceiver, request: Request) -> Response:
    receiver.clear_faults()
    return json_response(200, {"cleared": True})


def _post_feed(receiver: FeedReceiver, request: Request, feed: str, env: str) -> Response:
    wire = 0
    uncompressed = 0
    counts: dict[str, int] = {}
    known_feed = feed if feed in IDENTITY else None
    try:
        raw = _read_body(receiver, request)
        wire = len(raw)
        plan = receiver._next_plan()
        if plan is not None:
            if plan.latency_ms:
                time.sleep(plan.latency_ms / 1000)
            if plan.drop:
                receiver._record(known_feed, "dropped", wire, 0, {})
                return drop_connection(request)
            if plan.status is not None:
                raise _fault_reply(plan)
        receiver._check_key(request.headers.get("x-api-key"))
        if known_feed is None:
            raise _error(404, "unknown_feed", f"unknown feed {feed!r}")
        data = receiver._decode(raw, request.headers.get("Content-Encoding", ""))
        uncompressed = len(data)
        result = receiver._ingest(feed, env, request.headers.get("x-request-id"), data, counts)
        reply = _Reply(200, result)
    except _Reply as failure:
        reply = failure
        if "received" in counts and not counts.get("refused"):
            counts["refused"] = counts["received"]
    # Counted before the reply goes out: a client that reads /_stats right after
    # its response must find its request there.
    receiver._record(known_feed, str(reply.status), wire, uncompressed, counts)
    return _reply(reply)


def _read_body(receiver: FeedReceiver, request: Request) -> bytes:
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        raise _error(411, "length_required", "send the body with a Content-Length")
    length = request.headers.get("Content-Length")
    if length is None:
        return b""
    try:
        n = int(length)
    except ValueError:
        raise _error(400, "malformed_body", "Content-Length is not a number") from None
    if n > 4 * receiver.max_bytes + 65536:
        # Compressed JSON is smaller than the JSON: this one is over the limit.
        raise receiver._too_large(f"the body is {n} bytes, larger")
    return request.get_data() if n > 0 else b""


def _reply(reply: _Reply) -> Response:
    return json_response(reply.status, reply.body, reply.headers)


def _fault_reply(plan: QueuedFault) -> _Reply:
    status = plan.status or 500
    headers: dict[str, str] = {}
    if plan.retry_after is not None:
        ra = plan.retry_after
        headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
    if status == 413:
        return _Reply(413, {"code": "items_limit_exceeded", "message": "fault plan"}, headers)
    code = "too_many_requests" if status == 429 else "fault_injected"
    message = f"HTTP {status} from the receiver's fault plan"
    return _Reply(status, {"code": code, "message": message}, headers)


_ROUTES = Map(
    [
        Rule("/feeds/<feed>/<env>", methods=["POST"], endpoint=_post_feed),
        Rule("/_faults", methods=["POST"], endpoint=_post_faults),
        Rule("/_faults", methods=["DELETE"], endpoint=_delete_faults),
        Rule("/_state/<feed>/<env>", methods=["GET"], endpoint=_get_state),
        Rule("/_state", methods=["DELETE"], endpoint=_delete_state),
        Rule("/_stats", methods=["GET"], endpoint=_get_stats),
        Rule("/_health", methods=["GET"], endpoint=_get_health),
    ],
    strict_slashes=False,
)


def serve(
    host: str,
    port: int,
    api_key: str,
    max_items: int,
    max_bytes: int,
    echo: Any = print,
    parent: int | None = None,
) -> None:
    """Run a receiver in the foreground until Ctrl-C (or, with `parent`, until that
    process is gone: a child of `catalogctl local up` does not outlive it)."""
    receiver = FeedReceiver(
        host=host, port=port, api_key=api_key, max_items=max_items, max_bytes=max_bytes
    )
    # This process is only the receiver: a larger first generation means fewer
    # collections while request bodies are parsed (as `catalogctl local up` does).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    echo(f"feed receiver listening on {receiver.url} (Ctrl-C stops it)")
    with contextlib.suppress(KeyboardInterrupt):
        receiver.serve_forever()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=int)
@click.option("--api-key", envvar="RECEIVER_API_KEY", required=True, help="or RECEIVER_API_KEY")
@click.option("--max-items", default=DEFAULT_MAX_ITEMS, show_default=True, type=click.IntRange(1))
@click.option("--max-bytes", default=DEFAULT_MAX_BYTES, show_default=True, type=click.IntRange(2))
@click.option("--parent", type=int, default=None, help="Stop when this process id is gone.")
def main(
    host: str, port: int, api_key: str, max_items: int, max_bytes: int, parent: int | None
) -> None:
    """The local SaaS feed receiver: the feed API, plus /_state, /_stats and /_faults."""
    serve(host, port, api_key, max_items, max_bytes, echo=click.echo, parent=parent)


if __name__ == "__main__":
    main()
