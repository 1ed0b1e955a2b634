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
  a stock item whose qty is NULL never matches `qty <= N`: such products are read one by
  one from `/V1/stockItems/{sku}` (NULL: qty 0, as the export's empty cell);
- MSI (multi-source shops): sources, stocks, links and source items from
  `/V1/inventory/...` (`inventory.py`), one `StockLevel` per stock;
- every list is paged (with Magento's web API input limits on, an unpaged list gives
  20 items, a page at most 300); store views that are inactive are not read;
- a configurable's or dynamic bundle's `price: 0` is no price (Magento derives it from
  the children / selections); an option id not in the attribute's option list is kept
  as its raw value with one warning (SKU, attribute, id);
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
`SourceError`: no product would be right without it. A 401 / 403 (a missing ACL
resource, or a token Magento does not accept) raises `client.RefusedError` naming the
resource and the 2.4.4+ bearer setting (the token is never shown), except on the
optional endpoints: customer groups (tier prices fall back to the default group codes)
and MSI (the legacy stock item), which degrade with a warning.

With `since`, only products with `updated_at >= since - overlap` are read (sorted by
`updated_at`, de-duplicated); such a read is never complete (it cannot see deletions).
`high_water_mark` is the greatest `updated_at` seen by the last read. `include(skus)`
adds products an incremental read reads whatever their `updated_at` (the engine's
products whose special price window opened or closed since the last run: a window
that passes is no edit); each product is still yielded once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests

from catalog_sync.catalog import CatalogProduct, Stock
from catalog_sync.errors import SourceError
from catalog_sync.http import RetryPolicy, new_session
from catalog_sync.records import ReadReport, Rejected, SourceIssue
from catalog_sync.sources.magento_rest.client import (
    CHILD_FIELDS,
    PARENT_FIELDS,
    VIEW_FIELDS,
    Filter,
    MagentoHttp,
    _FetchFailedError,
    _Page,
    _quote,
    search_criteria,
)
from catalog_sync.sources.magento_rest.inventory import read_inventory
from catalog_sync.sources.magento_rest.mapper import LOW_STOCK_QTY, SKU_CHUNK, _Mapper
from catalog_sync.sources.magento_rest.parts import TS_FORMAT, _stock, _timestamp, _walk


class MagentoRestSource(MagentoHttp):
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
        rng: Callable[[], float] = random.random,
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
        self.session = session or new_session(pool_maxsize=max(10, concurrency * 2))
        self.page_size = page_size
        self.concurrency = concurrency
        self.retry = RetryPolicy(
            max_tries=max_tries,
            base=backoff_base,
            cap=max_retry_after,
            max_retry_after=max_retry_after,
            sleep=sleep,
            rng=rng,
        )
        self.since = since
        self.overlap = overlap
        self.store_views = tuple(store_views) if store_views is not None else None
        self.timeout = timeout
        self.light_page_size = light_page_size
        self.high_water_mark: datetime | None = None
        self._report = ReadReport(complete=False)
        self._notes: list[SourceIssue] = []
        self._include: list[str] = []

    def include(self, skus: Collection[str]) -> None:
        """Read these SKUs too in an incremental read, whatever their `updated_at`."""
        self._include = sorted(set(skus))

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
        for page in self.pages(skus=skus):
            yield from page.entries

    def resumable(self, skus: Collection[str] | None = None) -> bool:
        """A read that can stop at a page and go on later (`pages(after=...)`): a
        full read, paged by `entity_id` (an incremental or by-SKU read is not)."""
        return skus is None and self.since is None

    def pages(
        self, *, skus: Collection[str] | None = None, after: int | None = None
    ) -> Generator[PageRead, None, None]:
        """The read, page by page. `after` (a full read only): go on after that
        `entity_id` (a read an earlier invocation stopped at a page boundary: ids only
        grow and an edit keeps a product's id, so no product that exists all along is
        skipped or read twice)."""
        if after is not None and not self.resumable(skus):
            raise ValueError("only a full read goes on after an entity_id")
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
            seen: set[int] = set()  # product ids yielded (an unordered read, across queries)
            for groups, sort in self._queries(skus, after):
                yield from self._read_query(
                    pool, mapper, groups, sort, ordered=sort[0][0] != "updated_at", seen=seen
                )
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _queries(
        self, skus: Collection[str] | None, after: int | None = None
    ) -> Iterator[tuple[list[list[Filter]], list[tuple[str, str]]]]:
        groups: list[list[Filter]] = []
        if after is not None:
            groups.append([("entity_id", "gt", str(after))])
        sort = [("entity_id", "ASC")]
        if self.since is not None:
            since = (self.since - self.overlap).astimezone(UTC).strftime(TS_FORMAT)
            groups.append([("updated_at", "gteq", since)])
            sort = [("updated_at", "ASC"), ("entity_id", "ASC")]
        if skus is None:
            yield groups, sort
            if self.since is not None and self._include:  # due whatever their updated_at
                yield from self._sku_queries([], self._include, sort)
            return
        yield from self._sku_queries(groups, skus, sort)

    def _sku_queries(
        self, groups: list[list[Filter]], skus: Collection[str], sort: list[tuple[str, str]]
    ) -> Iterator[tuple[list[list[Filter]], list[tuple[str, str]]]]:
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
        listed = [v for v in views_json if v.get("code") and v.get("code") != "admin"]
        all_views = [str(v["code"]) for v in listed]
        inactive = {str(v["code"]) for v in listed if str(v.get("is_active", 1)) == "0"}
        if self.store_views is None:
            views = [v for v in all_views if v not in inactive]
        else:
            unknown = [v for v in self.store_views if v not in all_views]
            if unknown:
                raise SourceError(
                    f"Magento at {self.base_url} has no store view {', '.join(map(repr, unknown))} "
                    f"(it has: {', '.join(all_views) or 'none'})"
                )
            views = list(self.store_views)
            for view in views:
                if view in inactive:
                    self._report.issues.append(
                        SourceIssue(
                            f"store view {view!r} is inactive in Magento (read as configured)",
                            field="store_view",
                            severity="warning",
                        )
                    )
        websites = {
            int(w["id"]): str(w["code"])
            for w in self._meta("websites", "/rest/all/V1/store/websites")
        }
        sets_json = self._list_all(
            pool, "/rest/all/V1/products/attribute-sets/sets/list", "attribute sets"
        )
        sets = {int(s["attribute_set_id"]): str(s["attribute_set_name"]) for s in sets_json}
        tree = self._meta("categories", "/rest/all/V1/categories")
        categories: dict[int, tuple[str, ...]] = {}
        _walk(tree, (), categories)
        mapper = _Mapper(self, views, websites, sets, categories)
        self._read_parents(pool, mapper)
        self._read_stock(pool, mapper)
        read_inventory(self, pool, mapper)
        return mapper

    def _read_parents(self, pool: ThreadPoolExecutor, mapper: _Mapper) -> None:
        size = self.light_page_size
        base = search_criteria(
            [[("type_id", "in", "configurable,bundle")]], [("entity_id", "ASC")], size
        )

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
        for page in self._paged(pool, fetch, size, "configurable and bundle products", strict=True):
            for item in page.items:
                pid = int(item["id"])
                if pid <= last:
                    continue
                last = pid
                ext = item.get("extension_attributes") or {}
                for option in ext.get("bundle_product_options") or ():
                    for link in option.get("product_links") or ():
                        child_sku = str(link.get("sku") or "").lower()
                        known = mapper.bundle_parents.get(child_sku, ())
                        if child_sku and item["sku"] not in known:
                            mapper.bundle_parents[child_sku] = (*known, item["sku"])
                for child in ext.get("configurable_product_links") or ():
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

    def _stock_item(self, sku: str) -> Stock | None:
        """One product's legacy stock item (`/V1/stockItems/{sku}`), None if it has none."""
        try:
            data = self._get(f"/rest/all/V1/stockItems/{_quote(sku)}")
        except _FetchFailedError as exc:
            if exc.status == 404:
                return None
            raise
        try:
            return _stock(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._report.issues.append(  # from a page's thread: list.append is atomic
                SourceIssue(
                    f"the stock item cannot be read ({exc}): the product has no stock data",
                    sku=sku,
                    field="stock_item",
                    severity="warning",
                )
            )
            return None

    def _read_query(
        self,
        pool: ThreadPoolExecutor,
        mapper: _Mapper,
        groups: list[list[Filter]],
        sort: list[tuple[str, str]],
        *,
        ordered: bool,
        seen: set[int] | None = None,
    ) -> Iterator[PageRead]:
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
                if int(it["id"]) not in mapper.stock:  # lowStock skips a NULL qty
                    page.stock[int(it["id"])] = self._stock_item(str(it.get("sku")))
            return page

        seen = set() if seen is None else seen
        last = 0
        for page in self._paged(pool, fetch, size, "products", strict=False):
            entries: list[CatalogProduct | Rejected] = []
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
                entries.append(entry)
            yield PageRead(entries, last if ordered else None, page.final)


@dataclass(slots=True)
class PageRead:
    """One page of a read, mapped: its entries, the `entity_id` a later read may go
    on after (None: an unordered read cannot), and whether it was the query's last."""

    entries: list[CatalogProduct | Rejected]
    cursor: int | None
    final: bool
