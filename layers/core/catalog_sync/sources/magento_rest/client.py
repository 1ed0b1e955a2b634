"""The Magento REST client: authenticated GETs through the retry policy, search criteria, pages in flight."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
import requests

from catalog_sync.errors import SourceError
from catalog_sync.http import RetryPolicy, retry_after_seconds
from catalog_sync.records import ReadReport, SourceIssue

CHILD_CHUNK = 200  # ids per `entity_id in (...)` request
LIST_PAGE_SIZE = 300  # the largest page Magento's web API input limits allow
VIEW_FIELDS = "items[id,sku,name,price,status,visibility,weight,custom_attributes],total_count"
CHILD_FIELDS = "items[id,sku,custom_attributes],total_count"
PARENT_FIELDS = (
    "items[id,sku,type_id,extension_attributes[configurable_product_links,"
    "bundle_product_options]],total_count"
)

Filter = tuple[str, str, str]  # field, condition_type, value


BEARER_SETTING = "oauth/consumer/enable_integration_as_bearer"
BEARER_HINT = (
    "on Magento 2.4.4+ an integration token is accepted as a bearer token only with "
    'Stores > Configuration > Services > OAuth > Consumer Settings > "Allow OAuth Access '
    f'Tokens to be used as standalone Bearer tokens" = Yes ({BEARER_SETTING} = 1)'
)


class RefusedError(SourceError):
    """Magento refused the token on one endpoint (HTTP 401/403): a missing ACL
    resource of the integration, or a token it does not accept at all."""

    def __init__(self, base_url: str, path: str, status: int, resource: str | None) -> None:
        self.path = path
        self.status = status
        self.resource = resource
        needs = f"the permission {resource}" if resource else "a permission"
        super().__init__(
            f"Magento at {base_url} refused the access token (HTTP {status}) on GET {path}: "
            f"the integration lacks {needs}, or the token is not accepted at all (check it; "
            f"{BEARER_HINT}); `catalogctl check-source` lists every missing permission"
        )


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
    stock: dict[int, Any] = field(default_factory=dict)  # stock items read one by one
    final: bool = False  # the last page of the query (as page 1's total_count counted)


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


class MagentoHttp:
    """GETs and paging for `MagentoRestSource` (its base: the fields are set there)."""

    base_url: str
    token_provider: Callable[[], str]
    session: requests.Session
    retry: RetryPolicy
    timeout: float
    concurrency: int
    _report: ReadReport

    def _get(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Any:
        url = f"{self.base_url}{path}"
        reason = ""
        for attempt in range(1, self.retry.max_tries + 1):
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
                    raise RefusedError(self.base_url, path, status, _resource(resp))
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
            delay = self.retry.wait(attempt, wait)
            if delay is None:
                break
            self.retry.sleep(delay)
        raise _FetchFailedError(f"GET {path} failed after {attempt} tries: {reason}")

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
        first.final = last == 1
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
                page.final = number == last
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

    def _list_all(
        self, pool: ThreadPoolExecutor, path: str, what: str, size: int = LIST_PAGE_SIZE
    ) -> list[dict[str, Any]]:
        """Every item of a searchCriteria list, page by page until `total_count` (with
        the web API input limits on, an unpaged list stops at 20 items)."""
        base = search_criteria((), (), size)

        def fetch(number: int) -> _Page:
            data = self._get(path, [*base, ("searchCriteria[currentPage]", str(number))])
            return _Page(number, data.get("items") or [], int(data.get("total_count") or 0))

        out: list[dict[str, Any]] = []
        for page in self._paged(pool, fetch, size, what, strict=True):
            out.extend(page.items)
        return out

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


def _resource(resp: requests.Response) -> str | None:
    """The ACL resource a refusal names (`parameters.resources`), if it names one."""
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return None
    params = body.get("parameters") if isinstance(body, dict) else None
    if isinstance(params, dict) and isinstance(params.get("resources"), str):
        name = params["resources"][:100]
        return name if all(ch.isalnum() or ch in "_:,. " for ch in name) else None
    return None


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
