"""A local Magento 2 REST API (a test double) serving a catalog read from a product export CSV.

The CSV is read with `MagentoCsvSource` into `CatalogProduct`s, which are presented in
Magento's REST JSON shapes (magento-formats.md section B):

- `GET /rest/{all|<store>}/V1/products?searchCriteria...` (filter_groups / filters /
  condition_type eq, neq, gt, gteq, lt, lteq, in, nin, like, nlike, null, notnull, finset;
  sortOrders; pageSize / currentPage; `fields=` is ignored) and `/V1/products/{sku}`;
- `/V1/products/attributes/{code}` and `/V1/products/attributes?searchCriteria...`
  (select / multiselect values are option ids; labels -> ids assigned deterministically);
- `/V1/categories` (the tree: Root Catalog (1) > Default Category (2) > ...);
- `/V1/stockItems/lowStock?scopeId=0&qty=N&pageSize=&currentPage=` and `/V1/stockItems/{sku}`;
- `/V1/store/websites`, `/V1/store/storeViews`, `/V1/products/attribute-sets/sets/list`,
  `/V1/customerGroups/{id}`.

Store views: `/rest/all/V1` gives global values, `/rest/<store>/V1` (and `/rest/V1`, the
default view) the values as the view sees them. Entity, option, category and attribute ids
are assigned in file order and kept across `load()`s. `updated_at` is the load time; a
reload bumps it only for products whose data changed, `touch(sku)` bumps one.

- `/V1/store/storeConfigs`, `/V1/inventory/{sources,stocks,stock-source-links,source-items}`
  (MSI: `inventory=Inventory(...)`, default single-source; `msi = False`: not a route).

Real 2.4 behaviour (checked against the published schema, AdobeDocs/commerce-webapi
`admin-schema-2.4.7.yaml`): `price: 0` for a configurable or bundle without a price
(a bundle without one is dynamic, `price_type` "0"); text attributes of decimal type
with six places, dates as `YYYY-MM-DD HH:MM:SS`; store views with their website and
`is_active` (`view_websites`, `inactive_views`); `delete_option(code, label)` leaves
the id in products' values but not in the option list; `null_qty` SKUs have a NULL
stock qty (never matched by lowStock's `qty <= N`); `input_limits = True`: Magento's
web API input limits (page size 20 by default, more than 300 refused); `acl`: the
token's ACL resources (a route needing another is a 401 naming it, as Magento does),
`bearer_integration = False`: every call refused (2.4.4+ with the bearer setting off).

Faults: `fail_next(status=503, times=2)` answers the next requests with an error
(`status=0` drops the connection); `repeat_last_page = True` answers a page past the end
with the last page again, as old Magento releases do.

What the CSV cannot carry is not invented: select attributes given as labels are served
with option ids; text attributes (`text_attributes`) as REST gives them. The server keeps its catalog in memory, one compressed
record per product.

CLI: `python -m devstack.magento_server CSV --port 8788 --token T [--input-limits]
[--stock-sources stock_sources.csv --stocks "1=default:base;2=eu_a+eu_b:eu"]`.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import click
import orjson

from catalog_sync.catalog import CatalogProduct
from catalog_sync.errors import CatalogSyncError
from catalog_sync.records import Rejected
from catalog_sync.sources.inventory import parse_stocks
from catalog_sync.sources.magento_csv import MagentoCsvSource
from devstack.magento_server.catalog import (
    _INDEXED,
    CUSTOMER_GROUPS,
    DEFAULT_DECIMAL_ATTRIBUTES,
    DEFAULT_TEXT_ATTRIBUTES,
    DEFAULT_TOKEN,
    TS_FORMAT,
    _Catalog,
    _HttpError,
    _Rec,
)
from devstack.magento_server.criteria import (
    Criteria,
    _cmp_key,
    _field,
    _page,
    _predicate,
    _rec_field,
    parse_query,
)
from devstack.magento_server.inventory import ALL_RESOURCES, Inventory, Stock, resource_of
from devstack.magento_server.routes import (
    attribute_sets,
    inventory_routes,
    store_configs,
    store_views,
    websites,
)

DEFAULT_PAGE_SIZE = 20  # with the web API input limits on
MAX_PAGE_SIZE = 300


class MagentoApiServer:
    """A local Magento REST API over a product export CSV. See the module docstring."""

    def __init__(
        self,
        csv_path: str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        store_views: Sequence[str] = ("default",),
        text_attributes: Iterable[str] = DEFAULT_TEXT_ATTRIBUTES,
        decimal_attributes: Iterable[str] = DEFAULT_DECIMAL_ATTRIBUTES,
        clock: Callable[[], datetime] | None = None,
        view_websites: Mapping[str, str] | None = None,
        inactive_views: Collection[str] = (),
        inventory: Inventory | None = None,
        acl: Collection[str] | None = None,
    ) -> None:
        self.token = token
        self.store_views = tuple(store_views)
        self.text_attributes = frozenset(text_attributes)
        self.decimal_attributes = frozenset(decimal_attributes)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.view_websites = dict(view_websites or {})
        self.inactive_views = frozenset(inactive_views)
        self.inventory = inventory  # None: single-source (stock 1, source `default`)
        self.msi = True  # False: the MSI modules are disabled (/V1/inventory/... 404)
        self.acl = ALL_RESOURCES if acl is None else frozenset(acl)  # the token's resources
        self.bearer_integration = True  # False: 2.4.4+ with the bearer setting off
        self.input_limits = False  # web API input limits: page size 20 by default, max 300
        self.null_qty: set[str] = set()  # SKUs (lowercase) whose stock item qty is NULL
        self.repeat_last_page = False
        self.requests: deque[str] = deque(maxlen=100_000)  # request targets, for tests
        self._lock = threading.Lock()
        self._faults: deque[tuple[int, float | None, str | None]] = deque()
        self._cache: dict[tuple[Any, ...], list[_Rec]] = {}
        self._catalog: _Catalog | None = None
        self._connections: set[Any] = set()
        self._corrupt: dict[str, dict[str, Any]] = {}
        self.load(csv_path)
        self._server = _Server((host, port), _Handler)
        self._server.api = self
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def catalog(self) -> _Catalog:
        assert self._catalog is not None
        return self._catalog

    def _now(self) -> str:
        return self.clock().astimezone(UTC).strftime(TS_FORMAT)

    def load(self, csv_path: str | Path) -> None:
        """(Re)load the catalog from a CSV; ids are kept, changed products get a new updated_at."""
        source = MagentoCsvSource(str(csv_path))
        rejected: list[Rejected] = []

        def products() -> Iterable[CatalogProduct]:
            for entry in source.read():
                if isinstance(entry, CatalogProduct):
                    yield entry
                else:
                    rejected.append(entry)

        catalog = _Catalog(
            products(), self._catalog, self.store_views, self.text_attributes, self._now()
        )
        catalog.decimal_attributes = self.decimal_attributes
        catalog.rejected = rejected
        with self._lock:
            self._catalog = catalog
            self._cache.clear()

    def touch(self, sku: str, at: datetime | None = None) -> None:
        """Bump a product's updated_at (to `at`, default now)."""
        stamp = (at or self.clock()).astimezone(UTC).strftime(TS_FORMAT)
        with self._lock:
            rec = self.catalog.by_sku.get(sku.lower())
            if rec is None:
                raise KeyError(sku)
            rec.updated_at = stamp
            self._cache.clear()

    def fail_next(
        self,
        status: int = 503,
        times: int = 1,
        *,
        retry_after: float | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next `times` requests (whose target contains `path_contains`) with
        `status` (0: drop the connection without an answer)."""
        with self._lock:
            for _ in range(times):
                self._faults.append((status, retry_after, path_contains))

    def delete_option(self, code: str, label: str) -> None:
        """Delete an option of a select / multiselect attribute; products keep its id
        (as in Magento, where the leftover id stays in the product's value)."""
        with self._lock:
            self.catalog.deleted_options.setdefault(code, set()).add(label)

    def corrupt(self, sku: str, field: str, value: Any) -> None:
        """Serve `field` (a top-level item field) of `sku` as `value` in every scope."""
        with self._lock:
            self._corrupt.setdefault(sku.lower(), {})[field] = value

    def _item(self, catalog: _Catalog, rec: _Rec, view: str | None) -> dict[str, Any]:
        item = catalog.item(rec, rec.product(), view)
        bad = self._corrupt.get(rec.sku.lower())
        if bad:
            item.update(bad)
        return item

    def _take_fault(self, target: str) -> tuple[int, float | None] | None:
        with self._lock:
            for i, (status, retry_after, needle) in enumerate(self._faults):
                if needle is None or needle in target:
                    del self._faults[i]
                    return status, retry_after
        return None

    def start(self) -> MagentoApiServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="magento-api",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(2)
        self._server.server_close()

    def __enter__(self) -> MagentoApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests ----------------------------------------------------------------------

    def handle(self, method: str, target: str, auth: str | None) -> tuple[int, Any, dict[str, str]]:
        self.requests.append(target)
        fault = self._take_fault(target)
        if fault is not None:
            status, retry_after = fault
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return status, {"message": f"injected fault {status}"}, headers
        if method != "GET":
            raise _HttpError(405, "Request does not match any route.")
        split = urlsplit(target)
        path = unquote(split.path)
        query = parse_query(split.query)
        m = re.fullmatch(r"/rest(?:/([^/]+))?/V1/(.+)", path)
        if not m:
            raise _HttpError(404, "Request does not match any route.")
        scope, route = m.group(1), m.group(2).rstrip("/")  # the schema has `lowStock/`
        resource = resource_of(route) or "Magento_Backend::admin"
        token_ok = auth == f"Bearer {self.token}" and self.bearer_integration
        if not token_ok or resource not in self.acl:  # Magento answers both with a 401
            raise _HttpError(
                401,
                "The consumer isn't authorized to access %resources.",
                {"resources": resource},
            )
        catalog = self.catalog
        view: str | None
        if scope == "all":
            view = None
        elif scope is None:
            view = "default"
        elif scope in catalog.views or scope == "default":
            view = scope
        else:
            raise _HttpError(400, "Requested store is not found")
        return 200, self._route(catalog, route, view, query), {}

    def _route(self, catalog: _Catalog, route: str, view: str | None, query: dict[str, Any]) -> Any:
        if route == "products":
            return self._products(catalog, view, self._criteria(query))
        if route == "products/attributes":
            codes = sorted(catalog.attribute_ids, key=catalog.attribute_ids.__getitem__)
            items = [catalog.attribute(code) for code in ("tax_class_id", *codes)]
            return self._list(items, self._criteria(query))
        if route.startswith("products/attributes/"):
            return catalog.attribute(route[len("products/attributes/") :])
        if route == "products/attribute-sets/sets/list":
            return self._list(attribute_sets(catalog), self._criteria(query))
        if route.startswith("products/"):
            return self._item(catalog, self._rec(catalog, route[len("products/") :]), view)
        if route == "categories":
            return catalog.tree if view is None else catalog.tree["children_data"][0]
        if route == "store/websites":
            return websites(catalog)
        if route == "store/storeViews":
            return store_views(catalog, self.view_websites, self.inactive_views)
        if route == "store/storeConfigs":
            return store_configs(catalog, self.view_websites)
        if route == "stockItems/lowStock":
            return self._low_stock(catalog, query)
        if route.startswith("stockItems/"):
            rec = catalog.by_sku.get(route[len("stockItems/") :].lower())
            item = self._stock_item(catalog, rec) if rec else None
            if item is None:
                raise _HttpError(404, 'The Product with the "%1" SKU doesn\'t exist.', [route[11:]])
            return item
        if route.startswith("customerGroups/"):
            gid = route[len("customerGroups/") :]
            if gid.isdigit() and int(gid) in CUSTOMER_GROUPS:
                return {"id": int(gid), "code": CUSTOMER_GROUPS[int(gid)], "tax_class_id": 3}
            raise _HttpError(404, "No such entity with id = %1", [gid])
        if route.startswith("inventory/") and self.msi:
            lists = inventory_routes(catalog, self.inventory, self._stock_item)
            if route in lists:
                return self._list(lists[route], self._criteria(query))
        raise _HttpError(404, "Request does not match any route.")

    def _rec(self, catalog: _Catalog, sku: str) -> _Rec:
        rec = catalog.by_sku.get(sku.lower())
        if rec is None:
            raise _HttpError(
                404,
                "The product that was requested doesn't exist. Verify the product and try again.",
            )
        return rec

    def _criteria(self, query: dict[str, Any]) -> Criteria:
        """searchCriteria, with the web API input limits when they are on."""
        c = Criteria.parse(query)
        if not self.input_limits:
            return c
        if c.page_size is None:
            return replace(c, page_size=DEFAULT_PAGE_SIZE)
        if c.page_size > MAX_PAGE_SIZE:
            raise _HttpError(
                400, "Maximum SearchCriteria pageSize is %max", {"max": str(MAX_PAGE_SIZE)}
            )
        return c

    def _stock_item(self, catalog: _Catalog, rec: _Rec) -> dict[str, Any] | None:
        item = catalog.stock_item(rec, rec.product())
        if item is not None and rec.sku.lower() in self.null_qty:
            item = {**item, "qty": None}
        return item

    def _list(self, items: list[dict[str, Any]], c: Criteria) -> dict[str, Any]:
        groups = [[(f, _predicate(cd, v)) for f, cd, v in g] for g in c.groups]
        rows = [it for it in items if all(any(t(_field(it, f)) for f, t in g) for g in groups)]
        for fname, direction in reversed(c.sort):

            def item_key(it: dict[str, Any], f: str = fname) -> tuple[int, float, str]:
                return _cmp_key(_field(it, f))

            rows.sort(key=item_key, reverse=direction == "DESC")
        return {
            "items": _page(rows, c, self.repeat_last_page),
            "search_criteria": c.echo(),
            "total_count": len(rows),
        }

    def _selected(self, catalog: _Catalog, view: str | None, c: Criteria) -> list[_Rec]:
        key = (id(catalog), view, c.groups, c.sort)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        items: dict[int, dict[str, Any]] = {}

        def value(rec: _Rec, name: str) -> Any:
            if name in _INDEXED:
                return _rec_field(rec, name)
            item = items.get(rec.id)
            if item is None:
                item = items[rec.id] = catalog.item(rec, rec.product(), view)
            return _field(item, name)

        groups = [[(f, _predicate(cd, v)) for f, cd, v in g] for g in c.groups]
        candidates = catalog.recs
        for g in c.groups:  # a group of id / sku lookups: use the indexes
            if all(f in ("entity_id", "id", "sku") and cd in ("eq", "in") for f, cd, _v in g):
                found: dict[int, _Rec] = {}
                for f, _cd, v in g:
                    for x in v.split(","):
                        x = x.strip()
                        if f == "sku":
                            rec = catalog.by_sku.get(x.lower())
                        else:
                            rec = catalog.by_id.get(int(x)) if x.isdigit() else None
                        if rec is not None:
                            found[rec.id] = rec
                candidates = [found[i] for i in sorted(found)]
                break
        rows = [
            rec for rec in candidates if all(any(t(value(rec, f)) for f, t in g) for g in groups)
        ]
        for fname, direction in reversed(c.sort):

            def rec_key(r: _Rec, f: str = fname) -> tuple[int, float, str]:
                return _cmp_key(value(r, f))

            rows.sort(key=rec_key, reverse=direction == "DESC")
        if candidates is not catalog.recs:
            return rows  # an index lookup: cheap, not cached
        with self._lock:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = rows
        return rows

    def _products(self, catalog: _Catalog, view: str | None, c: Criteria) -> dict[str, Any]:
        rows = self._selected(catalog, view, c)
        page = _page(rows, c, self.repeat_last_page)
        return {
            "items": [self._item(catalog, rec, view) for rec in page],
            "search_criteria": c.echo(),
            "total_count": len(rows),
        }

    def _low_stock(self, catalog: _Catalog, query: dict[str, Any]) -> dict[str, Any]:
        try:
            limit = float(query.get("qty") or 0)
            size = int(query.get("pageSize") or 0) or None
            page = max(1, int(query.get("currentPage") or 1))
        except ValueError:
            raise _HttpError(400, "qty, pageSize and currentPage must be numbers.") from None
        if self.input_limits:
            size = min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        items = [
            item
            for rec, item in catalog.stock_items()
            if rec.sku.lower() not in self.null_qty and item["qty"] < limit  # NULL <= N: false
        ]
        c = Criteria((), (), size, page)
        return {
            "items": _page(items, c, self.repeat_last_page),
            "search_criteria": c.echo(),
            "total_count": len(items),
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    api: MagentoApiServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "catalogctl-magento/1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        api = self.server.api
        with api._lock:
            api._connections.add(self.connection)

    def finish(self) -> None:
        api = self.server.api
        with api._lock:
            api._connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        try:
            status, body, headers = self.server.api.handle(
                method, self.path, self.headers.get("Authorization")
            )
        except _HttpError as exc:
            status, headers = exc.status, {}
            body = {"message": exc.message}
            if exc.parameters is not None:
                body["parameters"] = exc.parameters
        if status == 0:  # drop the connection
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        data = orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")


@click.command()
@click.argument("csv_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8788, show_default=True, type=int)
@click.option("--token", default=DEFAULT_TOKEN, show_default=True)
@click.option("--store-view", "store_views", multiple=True, default=("default",), show_default=True)
@click.option(
    "--stock-sources", type=click.Path(exists=True, dir_okay=False), default=None,
    help="A Stock Sources export: serve a multi-source shop (with --stocks).",
)  # fmt: skip
@click.option("--stocks", default="", help="The stocks: 1=default:base;2=eu_a+eu_b:eu.")
@click.option("--input-limits", is_flag=True, help="Web API input limits on (page size 20/300).")
def main(
    csv_path: str,
    host: str,
    port: int,
    token: str,
    store_views: tuple[str, ...],
    stock_sources: str | None,
    stocks: str,
    input_limits: bool,
) -> None:
    """Serve CSV_PATH (a Magento product export) as a Magento REST API."""
    try:
        inventory = None
        if stock_sources:
            layout = [
                Stock(int(d.stock_id), f"Stock {d.stock_id}", d.sources, d.websites)
                for d in parse_stocks(stocks or "1=default:base")
            ]
            inventory = Inventory.from_csv(stock_sources, layout)
        server = MagentoApiServer(
            csv_path, host=host, port=port, token=token, store_views=store_views,
            inventory=inventory,
        )  # fmt: skip
    except CatalogSyncError as exc:
        raise click.ClickException(str(exc)) from exc
    server.input_limits = input_limits
    click.echo(
        orjson.dumps({"url": server.url, "products": len(server.catalog.recs)}).decode(), nl=True
    )
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
