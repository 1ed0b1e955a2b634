"""A local Adobe Commerce Optimizer: the IMS token endpoint and the Data Ingestion API
endpoints a sync uses, as a real HTTP server (werkzeug), behaving as the docs say.

- `POST /ims/token/v3` (form: client_id, client_secret, grant_type=client_credentials):
  `{"access_token", "token_type", "expires_in"}`; wrong credentials: 401.
- `POST /{tenant}/v1/catalog/...` (the paths of `catalog_sync.sinks.aco.wire`): a JSON
  array, plain or gzip. No/badly formed `Authorization`: 403 body; an unknown or
  expired token: 401 body. Every item is validated against the wire models: any bad
  item rejects the whole request with 400 `{"status": "FAILED", "message", "errors":
  [{itemIndex, code, message, value}]}`. Metadata first: a product whose locale lacks
  metadata for sku/name/description/shortDescription/price or for an attribute it
  carries is rejected (code `attributes.N.code` or `source.locale`). Accepted: 200
  `{"status": "ACCEPTED", "acceptedCount"}`, applied at once (ACO is asynchronous).
  Deleting a category deletes its children; deleting a price book deletes its
  children and their prices.
- Rate: more than `max_rps` ingestion requests in one second: 429, `retry-after: 1`.
- License: product upserts accepted are counted per window of `products_window`
  seconds (60: ACO's products per minute), in `/_stats` `productsPerWindow`.

Own routes: `GET /_state` (every entity's items), `GET /_stats` (requests per status
and per one-second window, items accepted), `POST /_faults` (plans as
`devstack/receiver.py` has: `{"status": 503, "times": 2, "retry_after": 1}`,
`{"latency_ms": 200}`, `{"drop_connection": 1}`), `DELETE /_faults`, `DELETE /_state`,
`POST /_tokens/expire` (every token issued so far becomes invalid: a 401 test).
"""

from __future__ import annotations

import contextlib
import gzip
import secrets
import socket
import threading
import time
from collections import Counter, deque
from typing import Any

import click
import orjson
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from catalog_sync.sinks.aco import wire
from devstack.receiver_rules import FaultPlanError, QueuedFault, parse_fault_plan

LOCAL_CLIENT_ID = "local-aco-client"
LOCAL_CLIENT_SECRET = "local-aco-secret-0123456789"
LOCAL_TENANT = "local-tenant"
TOKEN_SECONDS = 86400


def item_key(ent: wire.Entity, item: dict[str, Any]) -> tuple[str, ...]:
    if ent is wire.PRICE_BOOKS:
        return (item["priceBookId"],)
    if ent is wire.PRICES:
        return (item["sku"], item["priceBookId"])
    first = {"metadata": "code", "categories": "slug", "products": "sku"}[ent.name]
    return (item[first], item["source"]["locale"])


class AcoEmulator:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tenant: str = LOCAL_TENANT,
        client_id: str = LOCAL_CLIENT_ID,
        client_secret: str = LOCAL_CLIENT_SECRET,
        max_rps: int | None = None,
        token_seconds: int = TOKEN_SECONDS,
        products_window: int = 60,
    ) -> None:
        self.tenant = tenant
        self.products_window = products_window
        self.client_id = client_id
        self.client_secret = client_secret
        self.max_rps = max_rps
        self.token_seconds = token_seconds
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._faults: deque[QueuedFault] = deque()
        self.reset()
        self._server = make_server(host, port, self._wsgi, threaded=True)
        self._thread: threading.Thread | None = None

    # -- life ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/{self.tenant}"

    @property
    def ims_url(self) -> str:
        return f"{self.url}/ims/token/v3"

    def start(self) -> AcoEmulator:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> AcoEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.items: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {
                name: {} for name in wire.ENTITIES
            }
            self.statuses: Counter[str] = Counter()
            self.windows: Counter[int] = Counter()
            self.product_windows: Counter[int] = Counter()
            self.accepted: Counter[str] = Counter()
            self.tokens_issued = 0
            self.requests: list[dict[str, Any]] = []

    def add_fault(self, plan: Any) -> None:
        queued, _ = parse_fault_plan(plan)
        if queued is None:
            raise FaultPlanError("the emulator takes status/latency_ms/drop_connection plans")
        with self._lock:
            self._faults.append(queued)

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def state(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {name: list(held.values()) for name, held in self.items.items()}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "statuses": dict(self.statuses),
                "maxPerSecond": max(self.windows.values(), default=0),
                "perSecond": {str(k): v for k, v in sorted(self.windows.items())},
                "accepted": dict(self.accepted),
                "productsPerWindow": {str(k): v for k, v in sorted(self.product_windows.items())},
                "maxProductsPerWindow": max(self.product_windows.values(), default=0),
                "tokensIssued": self.tokens_issued,
            }

    # -- HTTP ----------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._dispatch(request, environ)
        return response(environ, start_response)

    def _dispatch(self, request: Request, environ: dict[str, Any]) -> Response:
        path, method = request.path, request.method
        if path == "/ims/token/v3" and method == "POST":
            return self._token(request)
        if path == "/_state":
            if method == "DELETE":
                self.reset()
                return _json(200, {"reset": True})
            return _json(200, self.state())
        if path == "/_stats":
            return _json(200, self.stats())
        if path == "/_tokens/expire" and method == "POST":
            self.expire_tokens()
            return _json(200, {"expired": True})
        if path == "/_faults":
            if method == "DELETE":
                with self._lock:
                    self._faults.clear()
                return _json(200, {"cleared": True})
            try:
                self.add_fault(orjson.loads(request.get_data()))
            except (orjson.JSONDecodeError, FaultPlanError) as exc:
                return _json(400, {"message": str(exc)})
            return _json(200, {"queued": True})
        prefix = f"/{self.tenant}"
        found = wire.by_path(path[len(prefix) :]) if path.startswith(prefix + "/") else None
        if found is None or method != "POST":
            return _json(404, {"message": f"no route {method} {path}"})
        return self._ingest(request, environ, *found)

    def _token(self, request: Request) -> Response:
        form = request.form
        if form.get("grant_type") != "client_credentials":
            return _json(400, {"error": "unsupported_grant_type"})
        ok = secrets.compare_digest(form.get("client_id", ""), self.client_id) and (
            secrets.compare_digest(form.get("client_secret", ""), self.client_secret)
        )
        if not ok:
            return _json(401, {"error": "invalid_client", "error_description": "invalid client"})
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.time() + self.token_seconds
            self.tokens_issued += 1
        body = {"access_token": token, "token_type": "bearer", "expires_in": self.token_seconds}
        return _json(200, body)

    def _count(self, status: int) -> None:
        self.statuses[str(status)] += 1

    def _ingest(
        self, request: Request, environ: dict[str, Any], ent: wire.Entity, delete: bool
    ) -> Response:
        with self._lock:
            window = int(time.time())
            self.windows[window] += 1
            plan = self._faults[0] if self._faults else None
            if plan is not None:
                plan.remaining -= 1
                if plan.remaining <= 0:
                    self._faults.popleft()
            over = self.max_rps is not None and self.windows[window] > self.max_rps
        if plan is not None:
            if plan.latency_ms:
                time.sleep(plan.latency_ms / 1000)
            if plan.drop:
                with self._lock:
                    self._count(0)
                sock = environ.get("werkzeug.socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return Response(b"", status=500)
            if plan.status is not None:
                headers = (
                    {} if plan.retry_after is None else {"retry-after": f"{plan.retry_after:g}"}
                )
                return self._reply(_json(plan.status, {"message": "fault plan"}, headers))
        if over:
            return self._reply(Response("Too Many Requests", 429, {"retry-after": "1"}))
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return self._reply(_json(403, wire.FORBIDDEN.model_dump()))
        with self._lock:
            expires = self._tokens.get(auth[7:].strip())
        if expires is None or expires < time.time():
            return self._reply(_json(401, wire.UNAUTHORIZED.model_dump()))
        raw = request.get_data()
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError):
                return self._reply(_json(400, {"status": "FAILED", "message": "bad gzip body"}))
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError:
            items = None
        if not isinstance(items, list):
            failed = wire.Failed(message="the body must be a JSON array")
            return self._reply(_json(400, failed.model_dump()))
        with self._lock:
            errors = wire.validate_items(ent, delete, items)
            if not errors and ent is wire.PRODUCTS and not delete:
                errors = self._metadata_first(items)
            if errors:
                bad = len({e.itemIndex for e in errors})
                failed = wire.Failed(
                    message=f"Items validation failed for {bad} items", errors=errors
                )
                self._count(400)
                self.requests.append({"path": request.path, "items": len(items), "status": 400})
                return _json(400, failed.model_dump())
            self._apply(ent, delete, items)
            if ent is wire.PRODUCTS and not delete:
                self.product_windows[int(time.time() // self.products_window)] += len(items)
            self.accepted[ent.name + ("/delete" if delete else "")] += len(items)
            self._count(200)
            self.requests.append({"path": request.path, "items": len(items), "status": 200})
        return _json(200, wire.Accepted(acceptedCount=len(items)).model_dump())

    def _reply(self, response: Response) -> Response:
        with self._lock:
            self._count(response.status_code)
        return response

    def _metadata_first(self, items: list[dict[str, Any]]) -> list[wire.ItemError]:
        meta = self.items["metadata"]
        errors = []
        for index, item in enumerate(items):
            locale = item["source"]["locale"]
            for code in wire.REQUIRED_METADATA:
                if (code, locale) not in meta:
                    errors.append(
                        wire.ItemError(
                            itemIndex=index,
                            code="source.locale",
                            message=f"no metadata for required attribute {code!r} in locale {locale!r}",
                            value=locale,
                        )
                    )
                    break
            for n, attr in enumerate(item.get("attributes") or []):
                if (attr["code"], locale) not in meta:
                    errors.append(
                        wire.ItemError(
                            itemIndex=index,
                            code=f"attributes.{n}.code",
                            message=f"no metadata for attribute {attr['code']!r} in locale {locale!r}",
                            value=attr["code"],
                        )
                    )
        return errors

    def _apply(self, ent: wire.Entity, delete: bool, items: list[dict[str, Any]]) -> None:
        held = self.items[ent.name]
        for item in items:
            key = item_key(ent, item)
            if not delete:
                held[key] = item
                continue
            held.pop(key, None)
            if ent is wire.CATEGORIES:
                slug, locale = key
                for k in [k for k in held if k[1] == locale and k[0].startswith(slug + "/")]:
                    del held[k]
            elif ent is wire.PRICE_BOOKS:
                self._delete_book(key[0])

    def _delete_book(self, book: str) -> None:
        books = self.items["price-books"]
        books.pop((book,), None)
        prices = self.items["prices"]
        for k in [k for k in prices if k[1] == book]:
            del prices[k]
        for child in [k[0] for k, v in list(books.items()) if v.get("parentId") == book]:
            self._delete_book(child)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers or {}, content_type="application/json")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8788, show_default=True, type=int)
@click.option("--max-rps", default=None, type=click.IntRange(1), help="429 past this rate")
def main(host: str, port: int, max_rps: int | None) -> None:
    """The local ACO emulator (IMS token endpoint + Data Ingestion API)."""
    emulator = AcoEmulator(host=host, port=port, max_rps=max_rps)
    click.echo(f"ACO_BASE_URL={emulator.base_url}\nACO_IMS_URL={emulator.ims_url}")
    try:
        emulator._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator._server.server_close()


if __name__ == "__main__":
    main()


LOCAL_CREDENTIALS_SECRET = "catalog-sync/aco-credentials"


def start_local_aco(
    aws_endpoint: str,
    secret_name: str = LOCAL_CREDENTIALS_SECRET,
    *,
    port: int = 0,
    max_rps: int | None = None,
) -> tuple[AcoEmulator, dict[str, str]]:
    """Start an emulator, store its client credentials as a secret in the (moto)
    Secrets Manager at `aws_endpoint`, and return the environment the aco target needs."""
    import boto3

    emulator = AcoEmulator(port=port, max_rps=max_rps).start()
    sm = boto3.client(
        "secretsmanager",
        endpoint_url=aws_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    value = orjson.dumps({"clientId": emulator.client_id, "clientSecret": emulator.client_secret})
    try:
        sm.create_secret(Name=secret_name, SecretString=value.decode())
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=secret_name, SecretString=value.decode())
    env = {
        "SAAS_TARGET": "aco",
        "ACO_BASE_URL": emulator.base_url,
        "ACO_IMS_URL": emulator.ims_url,
        "ACO_TENANT_ID": emulator.tenant,
        "ACO_CREDENTIALS_SECRET_ID": secret_name,
    }
    return emulator, env
