"""`MagentoRestSource`: reads a Magento 2 catalog through its REST API (magento-formats.md B, C).

Yields the same `catalog.CatalogProduct`s as `MagentoCsvSource` does for the same catalog:

- global values from `/rest/all/V1/products` (paged, sorted by `entity_id` ASC, pages
  fetched `concurrency` at a time, yielded in order as they come; never more than about
  `concurrency` pages in memory); per store view the same page's products from
  `/rest/<view>/V1/products` (`entity_id in (...)`), kept as `overrides` only where they
  differ from global (a value the view lacks but global has is `cleared`);
- select / multiselect / boolean values (option ids) mapped to admin labels with
  `/V1/products/attributes/{code}` (cached per read); `tax_class_id` the same way;
- categories from the `/V1/categories` tree (ids -> name paths, the store root left out);
  websites from `/V1/store/websites`; attribute sets from `.../attribute-sets/sets/list`;
- stock from the paged `/V1/stockItems/lowStock?qty=<big>` (list results lack
  `stock_item`, magento2#36533), read once before the products into a product id ->
  `Stock` map (the one structure that grows with the catalog, besides the parent map);
- configurable children from `configurable_product_links` (the children's SKUs and option
  values are fetched per page with `entity_id in (...)`); `parent_skus` from a first light
  pass over the configurables (`type_id eq configurable`, `fields=` trimmed).

Paging stops on `total_count`, never on an empty page (old Magento repeats the last page);
an item at or below the last `entity_id` seen is skipped. 429 / 5xx / connection errors
are retried with exponential backoff (honouring `Retry-After`) up to `max_tries`; a product
page that still fails makes the read incomplete with an issue naming the page, and the
other pages are still yielded. A catalog that shrinks or grows during a full read (the
`total_count` changes) makes the read incomplete too: offset pages may have shifted. A
metadata read that fails (categories, websites, stock, the parent pass) raises
`SourceError`: no product would be right without it. 401 / 403 raise `SourceError`
(the token is never shown).

With `since`, only products with `updated_at >= since - overlap` are read (sorted by
`updated_at`, de-duplicated); such a read is never complete (it cannot see deletions).
`high_water_mark` is the greatest `updated_at` seen by the last read.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import requests
from requests.adapters import HTTPAdapter

from catalog_sync.catalog import (
    ALL_CUSTOMER_GROUPS,
    PRODUCT_TYPES,
    SCALAR_VALUES,
    VISIBILITIES,
    CatalogProduct,
    GalleryImage,
    GroupedLink,
    Links,
    Stock,
    StoreValues,
    TierPrice,
    Variant,
)
from catalog_sync.errors import SourceError
from catalog_sync.records import ReadReport, Rejected, SourceIssue
from catalog_sync.sinks.feed_api import retry_after_seconds
from catalog_sync.sources.magento_csv import parse_date

TS_FORMAT = "%Y-%m-%d %H:%M:%S"
ALL_GROUPS_ID = 32000
LOW_STOCK_QTY = "99999999999"  # lowStock returns items with qty below this: all of them
CHILD_CHUNK = 200  # ids per `entity_id in (...)` request
SKU_CHUNK = 100
# custom attribute code -> (StoreValues field, kind)
_TEXT, _NUM, _DATE, _OPTION = range(4)
CUSTOM_SCALARS: dict[str, tuple[str, int]] = {
    "description": ("description", _TEXT),
    "short_description": ("short_description", _TEXT),
    "url_key": ("url_key", _TEXT),
    "meta_title": ("meta_title", _TEXT),
    "meta_keyword": ("meta_keywords", _TEXT),
    "meta_description": ("meta_description", _TEXT),
    "special_price": ("special_price", _NUM),
    "special_from_date": ("special_from", _DATE),
    "special_to_date": ("special_to", _DATE),
    "tax_class_id": ("tax_class", _OPTION),
}
IMAGE_ROLES = {"image": "base", "small_image": "small", "thumbnail": "thumbnail"}
IMAGE_ROLES["swatch_image"] = "swatch"
LABEL_ROLES = {
    "image_label": "base",
    "small_image_label": "small",
    "thumbnail_label": "thumbnail",
    "swatch_image_label": "swatch",
}
# Custom attributes the CSV source leaves out too (layout, system, REST-only).
SKIPPED_ATTRIBUTES = frozenset(
    {
        "category_ids",
        "url_path",
        "quantity_and_stock_status",
        "options_container",
        "gift_message_available",
        "msrp_display_actual_price_type",
        "msrp_enabled",
        "minimal_price",
        "custom_design",
        "custom_design_from",
        "custom_design_to",
        "custom_layout",
        "custom_layout_update",
        "custom_layout_update_file",
        "page_layout",
        "created_at",
        "updated_at",
        "price_type",
        "sku_type",
        "weight_type",
        "price_view",
        "shipment_type",
        "links_purchased_separately",
        "links_title",
        "links_exist",
        "samples_title",
    }
)
_OPTION_INPUTS = frozenset({"select", "multiselect", "boolean", "swatch_visual", "swatch_text"})
VIEW_FIELDS = "items[id,sku,name,price,status,visibility,weight,custom_attributes],total_count"
CHILD_FIELDS = "items[id,sku,custom_attributes],total_count"
PARENT_FIELDS = "items[id,sku,type_id,extension_attributes[configurable_product_links]],total_count"

Filter = tuple[str, str, str]  # field, condition_type, value


class _FetchFailedError(Exception):
    """A request failed for good (after retries, or a 4xx other than 401/403)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class _Page:
    number: int
    items: list[dict[str, Any]]
    total: int
    views: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    children: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class _Attribute:
    code: str
    kind: str  # "option" or "text"
    labels: dict[str, str]  # option value -> admin label


def search_criteria(
    groups: Sequence[Sequence[Filter]],
    sort: Sequence[tuple[str, str]] = (),
    page_size: int | None = None,
    page: int | None = None,
) -> list[tuple[str, str]]:
    """Query parameters for a Magento searchCriteria (groups ANDed, filters in a group ORed)."""
    params: list[tuple[str, str]] = []
    for g, filters in enumerate(groups):
        for f, (fld, cond, value) in enumerate(filters):
            base = f"searchCriteria[filter_groups][{g}][filters][{f}]"
            params += [(f"{base}[field]", fld), (f"{base}[value]", value)]
            params.append((f"{base}[condition_type]", cond))
    for i, (fld, direction) in enumerate(sort):
        params += [
            (f"searchCriteria[sortOrders][{i}][field]", fld),
            (f"searchCriteria[sortOrders][{i}][direction]", direction),
        ]
    if page_size is not None:
        params.append(("searchCriteria[pageSize]", str(page_size)))
    if page is not None:
        params.append(("searchCriteria[currentPage]", str(page)))
    if not params:
        params.append(("searchCriteria", ""))
    return params


class MagentoRestSource:
    """`ports.CatalogSource` over the Magento 2 REST API. See the module docstring.

    `base_url`: `https://shop.example.com` (no `/rest`). `token_provider()` gives the
    bearer token (called per request, so it may refresh). `store_views`: the store view
    codes to read overrides for; None reads every store view but `admin`.
    """

    def __init__(
        self,
        base_url: str,
        token_provider: Callable[[], str],
        *,
        session: requests.Session | None = None,
        page_size: int = 100,
        concurrency: int = 4,
        max_tries: int = 5,
        backoff_base: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        since: datetime | None = None,
        overlap: timedelta = timedelta(minutes=5),
        store_views: Collection[str] | None = None,
        timeout: float = 60.0,
        max_retry_after: float = 120.0,
        light_page_size: int = 300,
    ) -> None:
        if page_size < 1 or concurrency < 1 or max_tries < 1:
            raise ValueError("page_size, concurrency and max_tries must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.token_provider = token_provider
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(10, concurrency * 2))
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session
        self.page_size = page_size
        self.concurrency = concurrency
        self.max_tries = max_tries
        self.backoff_base = backoff_base
        self.sleep = sleep
        self.since = since
        self.overlap = overlap
        self.store_views = tuple(store_views) if store_views is not None else None
        self.timeout = timeout
        self.max_retry_after = max_retry_after
        self.light_page_size = light_page_size
        self.high_water_mark: datetime | None = None
        self._report = ReadReport(complete=False)
        self._notes: list[SourceIssue] = []

    def describe(self) -> str:
        return f"magento-rest:{self.base_url}"

    @property
    def incremental(self) -> bool:
        """An incremental read (since a watermark): never complete for deletions."""
        return self.since is not None

    @property
    def failed(self) -> bool:
        """Some page of the last read could not be read: its watermark must not move."""
        return any(i.severity == "error" and i.sku is None for i in self._report.issues)

    def report(self) -> ReadReport:
        """How the last read went (valid once `read` is exhausted)."""
        return self._report

    # -- HTTP ----------------------------------------------------------------------------

    def _get(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        url = f"{self.base_url}{path}"
        reason = ""
        for attempt in range(1, self.max_tries + 1):
            wait: float | None = None
            try:
                headers = {
                    "Authorization": f"Bearer {self.token_provider()}",
                    "Accept": "application/json",
                }
                resp = self.session.get(  # the token never follows a redirect (issue 10)
                    url, params=list(params), headers=headers, timeout=self.timeout,
                    allow_redirects=False,
                )  # fmt: skip
            except requests.RequestException as exc:
                reason = f"connection error ({type(exc).__name__})"
            else:
                status = resp.status_code
                if status in (401, 403):
                    raise SourceError(
                        f"Magento at {self.base_url} refused the access token (HTTP {status}) "
                        f"on GET {path}: check the integration token and its API permissions"
                        f"{_message(resp)}"
                    )
                if 300 <= status < 400:
                    raise SourceError(
                        f"Magento at {self.base_url} answered GET {path} with a redirect "
                        f"(HTTP {status}): not followed; set the source to the shop's final URL"
                    )
                if status == 429 or status >= 500:
                    reason = f"HTTP {status}{_message(resp)}"
                    wait = retry_after_seconds(resp.headers.get("Retry-After"))
                elif status >= 400:
                    raise _FetchFailedError(f"GET {path}: HTTP {status}{_message(resp)}", status)
                else:
                    try:
                        return orjson.loads(resp.content)
                    except orjson.JSONDecodeError:
                        reason = "the answer is not valid JSON (cut off?)"
            if attempt < self.max_tries:
                delay = self.backoff_base * 2 ** (attempt - 1) if wait is None else wait
                self.sleep(min(delay, self.max_retry_after))
        raise _FetchFailedError(f"GET {path} failed after {self.max_tries} tries: {reason}")

    def _meta(self, what: str, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        try:
            return self._get(path, params)
        except _FetchFailedError as exc:
            raise SourceError(f"cannot read the {what} from Magento: {exc}") from exc

    # -- paging ----------------------------------------------------------------------------

    def _paged(
        self,
        pool: ThreadPoolExecutor,
        fetch: Callable[[int], _Page],
        size: int,
        what: str,
        *,
        strict: bool,
    ) -> Iterator[_Page]:
        """Pages 1..ceil(total/size), `concurrency` in flight, yielded in order.

        A page that fails: `strict` raises SourceError, else the read is marked incomplete."""
        report = self._report

        def failed(number: int, exc: _FetchFailedError) -> None:
            if strict:
                raise SourceError(f"cannot read {what}, page {number}: {exc}") from exc
            report.complete = False
            report.issues.append(
                SourceIssue(
                    f"{what}: page {number} (page size {size}) could not be read: {exc}; "
                    "its products were skipped and the read is incomplete"
                )
            )

        try:
            first = fetch(1)
        except _FetchFailedError as exc:
            failed(1, exc)
            return
        total = first.total
        last = max(1, math.ceil(total / size))
        yield first
        pending: deque[tuple[int, Future[_Page]]] = deque()
        next_page = 2
        changed = False
        try:
            while pending or next_page <= last:
                while next_page <= last and len(pending) < self.concurrency:
                    pending.append((next_page, pool.submit(fetch, next_page)))
                    next_page += 1
                number, future = pending.popleft()
                try:
                    page = future.result()
                except _FetchFailedError as exc:
                    failed(number, exc)
                    continue
                if page.total != total and not changed:
                    changed = True
                    message = (
                        f"{what}: the catalog changed during the read (total_count {total} "
                        f"on page 1, {page.total} on page {number}): offset pages may have "
                        "shifted and skipped products"
                    )
                    if strict:
                        report.issues.append(SourceIssue(message, severity="warning"))
                    else:
                        report.complete = False
                        report.issues.append(SourceIssue(f"{message}; the read is incomplete"))
                yield page
        finally:
            for _, future in pending:
                future.cancel()

    # -- reading ---------------------------------------------------------------------------

    def note(self, issue: SourceIssue) -> None:
        """An issue found before the read (e.g. an unknown product id); the next
        read's report carries it."""
        self._notes.append(issue)

    def skus_for_ids(self, ids: Collection[int]) -> dict[int, str]:
        """The SKUs of Magento product ids (`entity_id`); ids Magento does not have
        are left out."""
        found = self._by_ids("/rest/all/V1/products", list(ids), "items[id,sku]")
        return {pid: str(item["sku"]) for pid, item in found.items()}

    def read(self, *, skus: Collection[str] | None = None) -> Iterator[CatalogProduct | Rejected]:
        self._report = report = ReadReport(complete=True)
        report.issues.extend(self._notes)
        self.high_water_mark = None
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="magento-rest")
        try:
            mapper = self._prepare(pool)
            report.store_views = list(mapper.views)
            if self.since is not None:
                report.complete = False
                report.issues.append(
                    SourceIssue(
                        f"incremental read (updated since {self.since.isoformat()}): "
                        "deletions cannot be seen, no deletion may be derived",
                        severity="warning",
                    )
                )
            for groups, sort in self._queries(skus):
                yield from self._read_query(
                    pool, mapper, groups, sort, ordered=sort[0][0] != "updated_at"
                )
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _queries(
        self, skus: Collection[str] | None
    ) -> Iterator[tuple[list[list[Filter]], list[tuple[str, str]]]]:
        groups: list[list[Filter]] = []
        sort = [("entity_id", "ASC")]
        if self.since is not None:
            since = (self.since - self.overlap).astimezone(UTC).strftime(TS_FORMAT)
            groups.append([("updated_at", "gteq", since)])
            sort = [("updated_at", "ASC"), ("entity_id", "ASC")]
        if skus is None:
            yield groups, sort
            return
        wanted = list(dict.fromkeys(s.strip() for s in skus if s.strip()))
        for i in range(0, len(wanted), SKU_CHUNK):
            chunk = wanted[i : i + SKU_CHUNK]
            plain = [s for s in chunk if "," not in s]
            sku_filters: list[Filter] = [("sku", "eq", s) for s in chunk if "," in s]
            if plain:
                sku_filters.insert(0, ("sku", "in", ",".join(plain)))
            yield [*groups, sku_filters], sort

    def _prepare(self, pool: ThreadPoolExecutor) -> _Mapper:
        views_json = self._meta("store views", "/rest/all/V1/store/storeViews")
        all_views = [v["code"] for v in views_json if v.get("code") and v.get("code") != "admin"]
        if self.store_views is None:
            views = all_views
        else:
            unknown = [v for v in self.store_views if v not in all_views]
            if unknown:
                raise SourceError(
                    f"Magento at {self.base_url} has no store view {', '.join(map(repr, unknown))} "
                    f"(it has: {', '.join(all_views) or 'none'})"
                )
            views = list(self.store_views)
        websites = {
            int(w["id"]): str(w["code"])
            for w in self._meta("websites", "/rest/all/V1/store/websites")
        }
        sets_json = self._meta(
            "attribute sets", "/rest/all/V1/products/attribute-sets/sets/list", search_criteria(())
        )
        sets = {
            int(s["attribute_set_id"]): str(s["attribute_set_name"]) for s in sets_json["items"]
        }
        tree = self._meta("categories", "/rest/all/V1/categories")
        categories: dict[int, tuple[str, ...]] = {}
        _walk(tree, (), categories)
        mapper = _Mapper(self, views, websites, sets, categories)
        self._read_parents(pool, mapper)
        self._read_stock(pool, mapper)
        return mapper

    def _read_parents(self, pool: ThreadPoolExecutor, mapper: _Mapper) -> None:
        size = self.light_page_size
        base = search_criteria([[("type_id", "eq", "configurable")]], [("entity_id", "ASC")], size)

        def fetch(number: int) -> _Page:
            params = [
                *base,
                ("searchCriteria[currentPage]", str(number)),
                ("fields", PARENT_FIELDS),
            ]
            data = self._get("/rest/all/V1/products", params)
            return _Page(number, data.get("items") or [], int(data.get("total_count") or 0))

        parents = mapper.parents
        last = 0
        for page in self._paged(pool, fetch, size, "configurable products", strict=True):
            for item in page.items:
                pid = int(item["id"])
                if pid <= last:
                    continue
                last = pid
                links = (item.get("extension_attributes") or {}).get("configurable_product_links")
                for child in links or ():
                    cid = int(child)
                    have = parents.get(cid)
                    parents[cid] = (*have, item["sku"]) if have else (item["sku"],)

    def _read_stock(self, pool: ThreadPoolExecutor, mapper: _Mapper) -> None:
        size = self.light_page_size

        def fetch(number: int) -> _Page:
            params = [
                ("scopeId", "0"),
                ("qty", LOW_STOCK_QTY),
                ("pageSize", str(size)),
                ("currentPage", str(number)),
            ]
            data = self._get("/rest/all/V1/stockItems/lowStock", params)
            return _Page(number, data.get("items") or [], int(data.get("total_count") or 0))

        stock = mapper.stock
        for page in self._paged(pool, fetch, size, "stock items", strict=True):
            for s in page.items:
                try:
                    stock[int(s["product_id"])] = _stock(s)
                except (KeyError, TypeError, ValueError) as exc:
                    raise SourceError(
                        f"stock item {s.get('item_id')!r} cannot be read: {exc}"
                    ) from exc

    def _read_query(
        self,
        pool: ThreadPoolExecutor,
        mapper: _Mapper,
        groups: list[list[Filter]],
        sort: list[tuple[str, str]],
        *,
        ordered: bool,
    ) -> Iterator[CatalogProduct | Rejected]:
        report = self._report
        size = self.page_size
        base = search_criteria(groups, sort, size)

        def fetch(number: int) -> _Page:
            data = self._get(
                "/rest/all/V1/products", [*base, ("searchCriteria[currentPage]", str(number))]
            )
            page = _Page(number, data.get("items") or [], int(data.get("total_count") or 0))
            ids = [int(it["id"]) for it in page.items]
            for view in mapper.views:
                page.views[view] = self._by_ids(f"/rest/{view}/V1/products", ids, VIEW_FIELDS)
            in_page = set(ids)
            children = [
                int(c)
                for it in page.items
                if it.get("type_id") == "configurable"
                for c in (it.get("extension_attributes") or {}).get("configurable_product_links")
                or ()
                if int(c) not in in_page
            ]
            page.children = self._by_ids("/rest/all/V1/products", children, CHILD_FIELDS)
            for it in page.items:
                page.children[int(it["id"])] = it
            return page

        seen: set[int] = set()
        last = 0
        for page in self._paged(pool, fetch, size, "products", strict=False):
            for item in page.items:
                pid = int(item.get("id") or 0)
                if ordered:
                    if pid <= last:
                        continue  # a repeated page (old Magento) or a shifted item
                    last = pid
                elif pid in seen:
                    continue
                else:
                    seen.add(pid)
                report.rows += 1
                stamp = _timestamp(item.get("updated_at"))
                if stamp is not None and (
                    self.high_water_mark is None or stamp > self.high_water_mark
                ):
                    self.high_water_mark = stamp
                entry = mapper.product(item, page)
                if isinstance(entry, CatalogProduct):
                    report.records += 1
                yield entry

    def _by_ids(self, path: str, ids: list[int], fields: str) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        ids = list(dict.fromkeys(ids))
        for i in range(0, len(ids), CHILD_CHUNK):
            chunk = ids[i : i + CHILD_CHUNK]
            params = search_criteria(
                [[("entity_id", "in", ",".join(map(str, chunk)))]], (), len(chunk), 1
            )
            data = self._get(path, [*params, ("fields", fields)])
            for it in data.get("items") or ():
                out[int(it["id"])] = it
        return out


class _RejectError(Exception):
    def __init__(self, fld: str, message: str) -> None:
        super().__init__(message)
        self.field = fld
        self.message = message


class _Mapper:
    """Turns REST items into CatalogProducts (runs in the reading thread only)."""

    def __init__(
        self,
        source: MagentoRestSource,
        views: list[str],
        websites: dict[int, str],
        sets: dict[int, str],
        categories: dict[int, tuple[str, ...]],
    ) -> None:
        self.source = source
        self.views = views
        self.websites = websites
        self.sets = sets
        self.categories = categories
        self.parents: dict[int, tuple[str, ...]] = {}
        self.stock: dict[int, Stock] = {}
        self.attributes: dict[str, _Attribute | _FetchFailedError] = {}
        self.attribute_codes: dict[str, str] = {}  # attribute_id -> code
        self.groups: dict[int, str] = {ALL_GROUPS_ID: ALL_CUSTOMER_GROUPS}

    # -- metadata, cached per read -------------------------------------------------------

    def attribute(self, code: str) -> _Attribute:
        cached = self.attributes.get(code)
        if cached is None:
            try:
                data = self.source._get(f"/rest/all/V1/products/attributes/{_quote(code)}")
                cached = _attribute(code, data)
            except _FetchFailedError as exc:
                cached = _Attribute(code, "text", {}) if exc.status == 404 else exc
            self.attributes[code] = cached
        if isinstance(cached, _FetchFailedError):
            raise _RejectError(code, f"the attribute's options cannot be read: {cached}")
        return cached

    def attribute_code(self, attribute_id: str) -> str:
        code = self.attribute_codes.get(attribute_id)
        if code is None:
            try:
                data = self.source._get(
                    "/rest/all/V1/products/attributes",
                    search_criteria([[("attribute_id", "eq", attribute_id)]]),
                )
            except _FetchFailedError as exc:
                raise _RejectError(
                    "configurable_product_options",
                    f"attribute {attribute_id} cannot be read: {exc}",
                ) from None
            items = data.get("items") or []
            if not items:
                raise _RejectError(
                    "configurable_product_options", f"unknown attribute id {attribute_id}"
                )
            code = str(items[0]["attribute_code"])
            self.attribute_codes[attribute_id] = code
            self.attributes.setdefault(code, _attribute(code, items[0]))
        return code

    def group(self, group_id: int) -> str:
        code = self.groups.get(group_id)
        if code is None:
            try:
                data = self.source._get(f"/rest/all/V1/customerGroups/{group_id}")
            except _FetchFailedError as exc:
                raise _RejectError("tier_prices", f"customer group {group_id}: {exc}") from None
            code = self.groups[group_id] = str(data["code"])
        return code

    # -- products --------------------------------------------------------------------------

    def product(self, item: dict[str, Any], page: _Page) -> CatalogProduct | Rejected:
        sku = str(item.get("sku") or "")
        if not sku:
            return Rejected(
                None,
                [SourceIssue(f"product id {item.get('id')!r} has no sku", field="sku")],
            )
        issues: list[SourceIssue] = []
        try:
            product = self._product(sku, item, page, issues)
        except _RejectError as exc:
            issues.append(SourceIssue(exc.message, sku=sku, field=exc.field))
            product = None
        if issues or product is None:
            return Rejected(sku, issues)
        return product

    def _product(
        self, sku: str, item: dict[str, Any], page: _Page, issues: list[SourceIssue]
    ) -> CatalogProduct | None:
        pid = int(item["id"])
        ptype = str(item.get("type_id") or "simple")
        if ptype not in PRODUCT_TYPES:
            raise _RejectError("type_id", f"unknown product type {ptype!r}")
        set_id = item.get("attribute_set_id")
        attribute_set = self.sets.get(int(set_id)) if set_id is not None else "Default"
        if attribute_set is None:
            raise _RejectError("attribute_set_id", f"unknown attribute set id {set_id!r}")
        ext = item.get("extension_attributes") or {}
        values = self._values(sku, item, issues)
        overrides: dict[str, StoreValues] = {}
        for view in self.views:
            view_item = page.views.get(view, {}).get(pid)
            if view_item is None:
                issues.append(
                    SourceIssue(
                        f"not returned for store view {view!r} (deleted during the read?)",
                        sku=sku,
                        field="store_view",
                    )
                )
                continue
            diff = _diff(values, self._values(sku, view_item, issues))
            if diff is not None:
                overrides[view] = diff
        websites = []
        for wid in ext.get("website_ids") or ():
            code = self.websites.get(int(wid))
            if code is None:
                raise _RejectError("website_ids", f"unknown website id {wid!r}")
            websites.append(code)
        categories: dict[tuple[str, ...], None] = {}
        for link in ext.get("category_links") or ():
            cid = int(link["category_id"])
            if cid not in self.categories:
                raise _RejectError(
                    "category_links", f"category id {cid} is not in the category tree"
                )
            path = self.categories[cid]
            if path:
                categories[path] = None
        variants, variant_labels = self._variants(sku, item, page)
        return CatalogProduct(
            sku=sku,
            product_type=ptype,
            attribute_set=attribute_set,
            websites=tuple(websites),
            values=values,
            overrides=overrides,
            categories=tuple(categories),
            stock=self.stock.get(pid),
            gallery=_gallery(item.get("media_gallery_entries") or ()),
            variants=variants,
            variant_labels=variant_labels,
            parent_skus=self.parents.get(pid, ()),
            links=_links(item.get("product_links") or ()),
            grouped=_grouped(item.get("product_links") or ()),
            tier_prices=self._tier_prices(item.get("tier_prices") or ()),
        )

    def _values(self, sku: str, item: dict[str, Any], issues: list[SourceIssue]) -> StoreValues:
        kw: dict[str, Any] = {}
        images: dict[str, str] = {}
        labels: dict[str, str] = {}
        attributes: dict[str, tuple[str, ...]] = {}

        def bad(fld: str, message: str) -> None:
            issues.append(SourceIssue(message, sku=sku, field=fld))

        name = item.get("name")
        if name is not None and name != "":
            kw["name"] = str(name)
        for fld in ("price", "weight"):
            if item.get(fld) is not None:
                try:
                    kw[fld] = _number(item[fld])
                except ValueError as exc:
                    bad(fld, str(exc))
        status = item.get("status")
        if status is not None:
            if str(status) in ("1", "2"):
                kw["enabled"] = str(status) == "1"
            else:
                bad("status", f"status must be 1 (enabled) or 2 (disabled), got {status!r}")
        visibility = item.get("visibility")
        if visibility is not None:
            try:
                kw["visibility"] = VISIBILITIES[int(visibility) - 1]
                if int(visibility) < 1:
                    raise IndexError
            except (ValueError, IndexError, TypeError):
                bad("visibility", f"visibility must be 1..4, got {visibility!r}")
        for ca in item.get("custom_attributes") or ():
            code = str(ca.get("attribute_code") or "")
            value = ca.get("value")
            if not code or code in SKIPPED_ATTRIBUTES or value is None or value == "":
                continue
            try:
                if code in CUSTOM_SCALARS:
                    fname, kind = CUSTOM_SCALARS[code]
                    if kind == _TEXT:
                        kw[fname] = str(value)
                    elif kind == _NUM:
                        kw[fname] = _number(value)
                    elif kind == _DATE:
                        try:
                            kw[fname] = parse_date(str(value))
                        except ValueError:
                            self.source._report.issues.append(
                                SourceIssue(
                                    f"unrecognised date {value!r}: ignored",
                                    sku=sku,
                                    field=code,
                                    severity="warning",
                                )
                            )
                    else:
                        kw[fname] = self._labels(code, value)[0]
                elif code in IMAGE_ROLES:
                    if value != "no_selection":
                        images[IMAGE_ROLES[code]] = str(value).strip()
                elif code in LABEL_ROLES:
                    labels[LABEL_ROLES[code]] = str(value)
                else:
                    attributes[code] = self._labels(code, value)
            except ValueError as exc:
                bad(code, str(exc))
            except _RejectError as exc:
                bad(exc.field, exc.message)
        return StoreValues(images=images, image_labels=labels, attributes=attributes, **kw)

    def _labels(self, code: str, value: Any) -> tuple[str, ...]:
        attr = self.attribute(code)
        if attr.kind == "text":
            if isinstance(value, list):
                return tuple(str(v) for v in value)
            return (str(value),)
        raw = value if isinstance(value, list) else str(value).split(",")
        out = []
        for v in raw:
            v = str(v).strip()
            if not v:
                continue
            label = attr.labels.get(v)
            if label is None:
                raise ValueError(f"option id {v!r} is not an option of attribute {code!r}")
            out.append(label)
        if not out:
            raise ValueError(f"no option in value {value!r}")
        return tuple(out)

    def _variants(
        self, sku: str, item: dict[str, Any], page: _Page
    ) -> tuple[tuple[Variant, ...], dict[str, str]]:
        if item.get("type_id") != "configurable":
            return (), {}
        ext = item.get("extension_attributes") or {}
        options = sorted(
            ext.get("configurable_product_options") or (), key=lambda o: int(o.get("position") or 0)
        )
        codes: list[str] = []
        labels: dict[str, str] = {}
        for opt in options:
            code = self.attribute_code(str(opt["attribute_id"]))
            codes.append(code)
            labels[code] = str(opt.get("label") or code)
        variants = []
        for cid in ext.get("configurable_product_links") or ():
            child = page.children.get(int(cid))
            if child is None:
                raise _RejectError(
                    "configurable_product_links", f"child product id {cid} does not exist"
                )
            values = {
                str(ca.get("attribute_code")): ca.get("value")
                for ca in child.get("custom_attributes") or ()
            }
            pairs = []
            for code in codes:
                value = values.get(code)
                if value is None or value == "":
                    continue
                try:
                    pairs.append((code, self._labels(code, value)[0]))
                except ValueError as exc:
                    raise _RejectError(
                        "configurable_product_links", f"child {child.get('sku')!r}: {exc}"
                    ) from None
            variants.append(Variant(str(child.get("sku")), tuple(pairs)))
        return tuple(variants), labels

    def _tier_prices(self, tiers: Sequence[dict[str, Any]]) -> tuple[TierPrice, ...]:
        out = []
        for t in tiers:
            try:
                website_id = int((t.get("extension_attributes") or {}).get("website_id") or 0)
                website = self.websites.get(website_id) if website_id else None
                out.append(
                    TierPrice(
                        self.group(int(t["customer_group_id"])),
                        _number(t["qty"]),
                        _number(t["value"]),
                        website,
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise _RejectError("tier_prices", f"cannot read a tier price: {exc}") from None
        return tuple(out)


# -- helpers ---------------------------------------------------------------------------------


def _message(resp: requests.Response) -> str:
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return f": {body['message'][:200]}"
    return ""


def _quote(code: str) -> str:
    from urllib.parse import quote

    return quote(code, safe="")


def _timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(str(value)[:19], TS_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a number: {value!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"not a finite number: {value!r}")
    return f


def _attribute(code: str, data: dict[str, Any]) -> _Attribute:
    kind = "option" if data.get("frontend_input") in _OPTION_INPUTS else "text"
    labels = {
        str(o.get("value")): str(o.get("label"))
        for o in data.get("options") or ()
        if str(o.get("value", "")) != ""
    }
    if data.get("frontend_input") == "boolean" and not labels:
        labels = {"1": "Yes", "0": "No"}
    return _Attribute(code, kind, labels)


def _walk(node: dict[str, Any], path: tuple[str, ...], out: dict[int, tuple[str, ...]]) -> None:
    """Category ids -> name paths; levels 0 (Root Catalog) and 1 (store roots) left out."""
    level = int(node.get("level") or 0)
    here = (*path, str(node.get("name"))) if level >= 2 else ()
    out[int(node["id"])] = here
    for child in node.get("children_data") or ():
        _walk(child, here, out)


def _stock(s: dict[str, Any]) -> Stock:
    manage = None if s.get("use_config_manage_stock", True) else bool(s.get("manage_stock"))
    notify = None
    if not s.get("use_config_notify_stock_qty", True) and s.get("notify_stock_qty") is not None:
        notify = _number(s["notify_stock_qty"])
    return Stock(
        qty=_number(s.get("qty") or 0),
        is_in_stock=bool(s.get("is_in_stock")),
        manage_stock=manage,
        notify_qty=notify,
    )


def _gallery(entries: Sequence[dict[str, Any]]) -> tuple[GalleryImage, ...]:
    return tuple(
        GalleryImage(
            str(e["file"]),
            e.get("label") or None,
            int(e.get("position") or 0),
            bool(e.get("disabled")),
        )
        for e in entries
        if e.get("file") and e.get("media_type", "image") == "image"
    )


def _links(links: Sequence[dict[str, Any]]) -> Links:
    by_type: dict[str, list[tuple[int, str]]] = {}
    for link in links:
        by_type.setdefault(str(link.get("link_type")), []).append(
            (int(link.get("position") or 0), str(link.get("linked_product_sku")))
        )

    def skus(kind: str) -> tuple[str, ...]:
        return tuple(s for _, s in sorted(by_type.get(kind, []), key=lambda p: p[0]))

    return Links(related=skus("related"), crosssell=skus("crosssell"), upsell=skus("upsell"))


def _grouped(links: Sequence[dict[str, Any]]) -> tuple[GroupedLink, ...]:
    out = []
    for link in sorted(
        (lk for lk in links if lk.get("link_type") == "associated"),
        key=lambda lk: int(lk.get("position") or 0),
    ):
        qty = (link.get("extension_attributes") or {}).get("qty")
        out.append(
            GroupedLink(
                str(link.get("linked_product_sku")), _number(qty) if qty is not None else None
            )
        )
    return tuple(out)


def _diff(base: StoreValues, view: StoreValues) -> StoreValues | None:
    """The view's values that differ from global, as sparse overrides (None: no difference)."""
    kw: dict[str, Any] = {}
    cleared = set()
    for name in SCALAR_VALUES:
        g, v = getattr(base, name), getattr(view, name)
        if v == g:
            continue
        if v is None:
            cleared.add(name)
        else:
            kw[name] = v
    images = _dict_diff(base.images, view.images, "")
    labels = _dict_diff(base.image_labels, view.image_labels, "")
    attributes = _dict_diff(base.attributes, view.attributes, ())
    if not (kw or cleared or images or labels or attributes):
        return None
    return StoreValues(
        images=images,
        image_labels=labels,
        attributes=attributes,
        cleared=frozenset(cleared),
        **kw,
    )


def _dict_diff(base: dict[str, Any], view: dict[str, Any], empty: Any) -> dict[str, Any]:
    out = {k: v for k, v in view.items() if base.get(k) != v}
    out.update({k: empty for k in base if k not in view})
    return out
