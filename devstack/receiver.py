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
import hmac
import sys
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import click
import orjson

DEFAULT_MAX_ITEMS = 1000
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
MAX_REMEMBERED_BATCHES = 200_000

# Item identity per feed (the contract's table).
IDENTITY: dict[str, tuple[str, ...]] = {
    "products": ("sku", "storeViewCode"),
    "productAttributes": ("attributeCode", "storeViewCode"),
    "categories": ("urlPath", "storeViewCode"),
    "prices": ("sku", "customerGroupCode", "websiteCode"),
    "variants": ("parentSku", "productSku"),
    "inventoryStockStatus": ("stockId", "sku"),
}

_PLAN_KEYS = frozenset(
    {"status", "times", "retry_after", "latency_ms", "drop_connection", "reject"}
)


class FaultPlanError(ValueError):
    """A fault plan that does not make sense."""


@dataclass
class _Plan:
    remaining: int
    status: int | None = None
    retry_after: float | None = None
    latency_ms: int = 0
    drop: bool = False


def parse_fault_plan(plan: Any) -> tuple[_Plan | None, dict[str, frozenset[str]]]:
    """A queued plan (or None) and the reject rules of one fault plan object."""
    if not isinstance(plan, dict) or not plan:
        raise FaultPlanError("a fault plan is a non-empty JSON object")
    unknown = set(plan) - _PLAN_KEYS
    if unknown:
        raise FaultPlanError(f"unknown fault plan fields: {', '.join(sorted(unknown))}")

    def number(name: str, *, low: float, integer: bool = True) -> Any:
        value = plan[name]
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or value < low:
            kind = "an integer" if integer else "a number"
            raise FaultPlanError(f"fault plan field {name!r} must be {kind} >= {low}")
        return value

    reject: dict[str, frozenset[str]] = {}
    if "reject" in plan:
        rules = plan["reject"]
        if not isinstance(rules, dict) or not rules:
            raise FaultPlanError("'reject' must be an object: {field: [values]}")
        for name, values in rules.items():
            if not isinstance(values, list) or not all(
                isinstance(v, str | int) and not isinstance(v, bool) for v in values
            ):
                raise FaultPlanError(f"'reject.{name}' must be a list of strings")
            reject[name] = frozenset(str(v) for v in values)
    queued = _Plan(remaining=1)
    if "status" in plan:
        queued.status = number("status", low=400)
        if queued.status > 599:
            raise FaultPlanError("fault plan field 'status' must be a 4xx or 5xx code")
    if "retry_after" in plan:
        queued.retry_after = number("retry_after", low=0, integer=False)
    if "latency_ms" in plan:
        queued.latency_ms = number("latency_ms", low=0)
    if "drop_connection" in plan:
        value = plan["drop_connection"]
        if value is True:
            value = 1
        elif value is False:
            value = 0
        if not isinstance(value, int) or value < 0:
            raise FaultPlanError("'drop_connection' must be a count of requests (>= 0)")
        queued.drop = value > 0
        queued.remaining = max(value, 1)
    if "times" in plan:
        queued.remaining = number("times", low=1)
    if queued.status is None and not queued.drop and "latency_ms" not in plan:
        if "times" in plan or "retry_after" in plan:
            raise FaultPlanError(
                "'times'/'retry_after' need 'status', 'latency_ms' or 'drop_connection'"
            )
        return None, reject
    return queued, reject


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


def _is_iso8601(value: Any) -> bool:
    if not isinstance(value, str) or len(value) < 10:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _describe(item: dict[str, Any], identity: tuple[str, ...]) -> str:
    parts = [f"{f}={item[f]}" for f in identity if isinstance(item.get(f), str | int)]
    return f" ({', '.join(parts)})" if parts else ""


def validate_items(
    feed: str, items: list[Any], reject: dict[str, frozenset[str]] | None = None
) -> tuple[list[tuple[tuple[Any, ...], dict[str, Any]]], list[dict[str, Any]]]:
    """Valid items as (identity, item), and the `invalidFeedItems` entries."""
    identity = IDENTITY[feed]
    valid: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    invalid: list[dict[str, Any]] = []

    def bad(index: int, code: str, message: str) -> None:
        invalid.append({"itemIndex": index, "code": code, "message": message})

    for index, item in enumerate(items):
        if not isinstance(item, dict):
            bad(index, "invalid_item", f"item {index}: not a JSON object")
            continue
        try:
            key = tuple(item[f] for f in identity)
        except KeyError:
            missing = [f for f in identity if f not in item]
            bad(
                index,
                "missing_field",
                f"item {index}{_describe(item, identity)}: identity field "
                f"{missing[0]!r} is missing",
            )
            continue
        wrong = next(
            (
                f
                for f, v in zip(identity, key, strict=True)
                if isinstance(v, bool) or not isinstance(v, str | int) or v == ""
            ),
            None,
        )
        if wrong is not None:
            bad(
                index,
                "invalid_value",
                f"item {index}{_describe(item, identity)}: identity field {wrong!r} must be "
                f"a non-empty string, got {orjson.dumps(item[wrong]).decode()[:80]}",
            )
            continue
        deleted = item.get("deleted")
        if not isinstance(deleted, bool):
            what = "is missing" if "deleted" not in item else "must be a boolean"
            bad(
                index,
                "missing_field" if "deleted" not in item else "invalid_value",
                f"item {index}{_describe(item, identity)}: field 'deleted' {what}",
            )
            continue
        if not _is_iso8601(item.get("modifiedAt")):
            absent = "modifiedAt" not in item
            bad(
                index,
                "missing_field" if absent else "invalid_value",
                f"item {index}{_describe(item, identity)}: field 'modifiedAt' "
                + ("is missing" if absent else "must be an ISO 8601 date-time"),
            )
            continue
        if reject:
            hit = next(
                (
                    (f, item[f])
                    for f, values in reject.items()
                    if f in item and str(item[f]) in values
                ),
                None,
            )
            if hit is not None:
                bad(
                    index,
                    "rejected",
                    f"item {index}{_describe(item, identity)}: rejected by the fault plan "
                    f"({hit[0]}={hit[1]})",
                )
                continue
        valid.append((key, item))
    return valid, invalid


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
        # Held items as their JSON bytes: a large state of dicts would make every
        # garbage collection of this process walk it (bytes are not tracked).
        self._state: dict[tuple[str, str], dict[tuple[Any, ...], bytes]] = {}
        self._accepted_batches: dict[tuple[str, str, str], None] = {}
        self._stats = _Stats()
        self._feed_stats: dict[str, _Stats] = {}
        self._plans: deque[_Plan] = deque()
        self._reject: dict[str, frozenset[str]] = {}
        self._connections: set[Any] = set()
        self._server = _Server((host, port), _Handler)
        self._server.receiver = self
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FeedReceiver:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"feed-receiver-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop()` (or KeyboardInterrupt)."""
        self._server.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # idle keep-alive connections
            with contextlib.suppress(OSError):
                conn.shutdown(2)
        self._server.server_close()

    def __enter__(self) -> FeedReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- direct accessors ----------------------------------------------------------

    def state(self, feed: str, environment_id: str) -> list[dict[str, Any]]:
        """The current items of a feed in an environment (deleted ones are gone)."""
        return [orjson.loads(b) for b in self._held(feed, environment_id)]

    def _held(self, feed: str, environment_id: str) -> list[bytes]:
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

    def _next_plan(self) -> _Plan | None:
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
        with self._lock:
            if batch is not None and batch in self._accepted_batches:
                counts["duplicate"] = len(items)
                return {"invalidFeedItems": []}
            held = self._state.setdefault((feed, env), {})
            for key, item in valid:
                if item["deleted"]:
                    held.pop(key, None)
                else:
                    held[key] = orjson.dumps(item)
            if batch is not None and not invalid:
                self._accepted_batches[batch] = None
                if len(self._accepted_batches) > MAX_REMEMBERED_BATCHES:
                    del self._accepted_batches[next(iter(self._accepted_batches))]
        counts["accepted"] = len(valid)
        counts["invalid"] = len(invalid)
        return {"invalidFeedItems": invalid}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    receiver: FeedReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away (timeout, stop()) is not an error of the receiver.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "catalog-sync-feed-receiver/1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        receiver = self.server.receiver
        with receiver._lock:
            receiver._connections.add(self.connection)

    def finish(self) -> None:
        receiver = self.server.receiver
        with receiver._lock:
            receiver._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing -----------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise _error(411, "length_required", "send the body with a Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            raise _error(400, "malformed_body", "Content-Length is not a number") from None
        if n > 4 * self.server.receiver.max_bytes + 65536:
            # Compressed JSON is smaller than the JSON: this one is over the limit.
            self.close_connection = True
            raise self.server.receiver._too_large(f"the body is {n} bytes, larger")
        return self.rfile.read(n) if n > 0 else b""

    def _send_json(self, reply: _Reply) -> int:
        payload = orjson.dumps(reply.body)
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)
        return reply.status

    def _route(self) -> list[str]:
        path = urlsplit(self.path).path
        return [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []

    # -- verbs --------------------------------------------------------------------

    def do_POST(self) -> None:
        parts = self._route()
        if len(parts) == 3 and parts[0] == "feeds":
            self._post_feed(parts[1], parts[2])
            return
        try:
            body = self._read_body()
            if parts == ["_faults"]:
                try:
                    plan = orjson.loads(body)
                    self.server.receiver.add_fault(plan)
                except (orjson.JSONDecodeError, FaultPlanError) as exc:
                    raise _error(400, "invalid_fault_plan", str(exc)) from None
                raise _Reply(200, {"queued": plan})
            raise _error(404, "not_found", f"no route POST {self.path}")
        except _Reply as reply:
            self._send_json(reply)

    def do_GET(self) -> None:
        parts = self._route()
        receiver = self.server.receiver
        if len(parts) == 3 and parts[0] == "_state":
            feed, env = parts[1], parts[2]
            if feed not in IDENTITY:
                self._send_json(_error(404, "unknown_feed", f"unknown feed {feed!r}"))
                return
            held = receiver._held(feed, env)
            items = orjson.Fragment(b"[%s]" % b",".join(held))
            body = {"feed": feed, "environmentId": env, "count": len(held), "items": items}
            self._send_json(_Reply(200, body))
        elif parts == ["_stats"]:
            self._send_json(_Reply(200, receiver.stats()))
        elif parts == ["_health"]:
            self._send_json(_Reply(200, {"ok": True}))
        else:
            self._send_json(_error(404, "not_found", f"no route GET {self.path}"))

    def do_DELETE(self) -> None:
        parts = self._route()
        receiver = self.server.receiver
        if parts == ["_state"]:
            receiver.reset()
            self._send_json(_Reply(200, {"reset": True}))
        elif parts == ["_faults"]:
            receiver.clear_faults()
            self._send_json(_Reply(200, {"cleared": True}))
        else:
            self._send_json(_error(404, "not_found", f"no route DELETE {self.path}"))

    def _post_feed(self, feed: str, env: str) -> None:
        receiver = self.server.receiver
        wire = 0
        uncompressed = 0
        counts: dict[str, int] = {}
        known_feed = feed if feed in IDENTITY else None
        try:
            raw = self._read_body()
            wire = len(raw)
            plan = receiver._next_plan()
            if plan is not None:
                if plan.latency_ms:
                    time.sleep(plan.latency_ms / 1000)
                if plan.drop:
                    self.close_connection = True
                    receiver._record(known_feed, "dropped", wire, 0, {})
                    return
                if plan.status is not None:
                    raise self._fault_reply(plan)
            receiver._check_key(self.headers.get("x-api-key"))
            if known_feed is None:
                raise _error(404, "unknown_feed", f"unknown feed {feed!r}")
            if not env:
                raise _error(404, "not_found", "the environment id is empty")
            data = receiver._decode(raw, self.headers.get("Content-Encoding", ""))
            uncompressed = len(data)
            result = receiver._ingest(feed, env, self.headers.get("x-request-id"), data, counts)
            reply = _Reply(200, result)
        except _Reply as failure:
            reply = failure
            if "received" in counts and not counts.get("refused"):
                counts["refused"] = counts["received"]
        # Counted before the reply goes out: a client that reads /_stats right after
        # its response must find its request there.
        receiver._record(known_feed, str(reply.status), wire, uncompressed, counts)
        self._send_json(reply)

    @staticmethod
    def _fault_reply(plan: _Plan) -> _Reply:
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


def serve(
    host: str, port: int, api_key: str, max_items: int, max_bytes: int, echo: Any = print
) -> None:
    """Run a receiver in the foreground until Ctrl-C."""
    receiver = FeedReceiver(
        host=host, port=port, api_key=api_key, max_items=max_items, max_bytes=max_bytes
    )
    echo(f"feed receiver listening on {receiver.url} (Ctrl-C stops it)")
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver._server.server_close()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=int)
@click.option("--api-key", envvar="RECEIVER_API_KEY", required=True, help="or RECEIVER_API_KEY")
@click.option("--max-items", default=DEFAULT_MAX_ITEMS, show_default=True, type=click.IntRange(1))
@click.option("--max-bytes", default=DEFAULT_MAX_BYTES, show_default=True, type=click.IntRange(2))
def main(host: str, port: int, api_key: str, max_items: int, max_bytes: int) -> None:
    """The local SaaS feed receiver: the feed API, plus /_state, /_stats and /_faults."""
    serve(host, port, api_key, max_items, max_bytes, echo=click.echo)


if __name__ == "__main__":
    main()
