"""Magento's searchCriteria: parsing the query string, filter conditions, sorting and paging."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from devstack.magento_server.catalog import _BRACKETS, _HttpError, _Rec


def parse_query(query: str) -> dict[str, Any]:
    """`a[b][0][c]=v&x=y` -> {"a": {"b": {"0": {"c": "v"}}}, "x": "y"}."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        head, _, rest = key.partition("[")
        parts = [head] + (_BRACKETS.findall("[" + rest) if rest else [])
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[parts[-1]] = value
    return out


def _listed(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [node[k] for k in sorted(node, key=lambda k: int(k) if k.isdigit() else 0)]
    return []


@dataclass(frozen=True)
class Criteria:
    groups: tuple[tuple[tuple[str, str, str], ...], ...]  # ((field, condition, value), ...)
    sort: tuple[tuple[str, str], ...]
    page_size: int | None
    current_page: int

    @classmethod
    def parse(cls, query: dict[str, Any], *, required: bool = True) -> Criteria:
        sc = query.get("searchCriteria")
        if sc is None:
            if required:
                raise _HttpError(
                    400,
                    '"%fieldName" is required. Enter and try again.',
                    {"fieldName": "searchCriteria"},
                )
            sc = {}
        if not isinstance(sc, dict):
            sc = {}
        groups = []
        for group in _listed(sc.get("filter_groups")):
            filters = []
            for f in _listed(group.get("filters") if isinstance(group, dict) else None):
                if not isinstance(f, dict) or "field" not in f:
                    raise _HttpError(400, "A filter needs a field.")
                cond = (f.get("condition_type") or "eq").lower()
                if cond not in _CONDITIONS:
                    raise _HttpError(400, f'Invalid condition type "{cond}".')
                filters.append((f["field"], cond, f.get("value", "")))
            if filters:
                groups.append(tuple(filters))
        sort = tuple(
            (o.get("field", "entity_id"), (o.get("direction") or "ASC").upper())
            for o in _listed(sc.get("sortOrders"))
            if isinstance(o, dict)
        )
        try:
            size = int(sc["pageSize"]) if sc.get("pageSize") not in (None, "") else None
            page = int(sc.get("currentPage") or 1)
        except ValueError:
            raise _HttpError(400, "pageSize and currentPage must be integers.") from None
        return cls(tuple(groups), sort, size if size and size > 0 else None, max(1, page))

    def echo(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "filter_groups": [
                {"filters": [{"field": f, "value": v, "condition_type": c} for f, c, v in g]}
                for g in self.groups
            ]
        }
        if self.sort:
            out["sort_orders"] = [{"field": f, "direction": d} for f, d in self.sort]
        if self.page_size is not None:
            out["page_size"] = self.page_size
        out["current_page"] = self.current_page
        return out


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _cmp_key(value: Any) -> tuple[int, float, str]:
    n = _num(value)
    if n is not None and not isinstance(value, bool):
        return (0, n, "")
    return (1, 0.0, "" if value is None else str(value).lower())


def _like(pattern: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in pattern.lower().split("%")]
    return re.compile(".*".join(p.replace("_", ".") for p in parts) + r"\Z", re.S)


def _test(actual: Any, cond: str, expected: str) -> bool:
    return _predicate(cond, expected)(actual)


def _predicate(cond: str, expected: str) -> Callable[[Any], bool]:
    """A test of a field value against one filter, compiled once per request."""

    def values(actual: Any) -> list[Any]:
        return [v for v in (actual if isinstance(actual, list) else [actual]) if v is not None]

    if cond == "null":
        return lambda actual: actual in (None, "", [])
    if cond == "notnull":
        return lambda actual: actual not in (None, "", [])
    if cond in ("in", "nin"):
        wanted = {_cmp_key(x.strip()) for x in expected.split(",")}
        hit_in = cond == "in"
        return lambda actual: any(_cmp_key(v) in wanted for v in values(actual)) == hit_in
    if cond in ("finset", "nfinset"):
        hit_fs = cond == "finset"
        needle = expected.strip()
        return lambda actual: any(needle in str(v).split(",") for v in values(actual)) == hit_fs
    if cond in ("like", "nlike"):
        rx = _like(expected)
        hit_like = cond == "like"
        return lambda actual: any(rx.match(str(v).lower()) for v in values(actual)) == hit_like
    exp = _cmp_key(expected)
    if cond == "neq":
        return lambda actual: all(_cmp_key(v) != exp for v in values(actual))
    op = _CMP[cond]
    return lambda actual: any(op(_cmp_key(v), exp) for v in values(actual))


_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "gt": lambda a, b: a > b,
    "gteq": lambda a, b: a >= b,
    "from": lambda a, b: a >= b,
    "moreq": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lteq": lambda a, b: a <= b,
    "to": lambda a, b: a <= b,
}
_CONDITIONS = {*_CMP, "neq", "in", "nin", "like", "nlike", "null", "notnull", "finset", "nfinset"}


def _field(item: dict[str, Any], name: str) -> Any:
    if name == "entity_id":
        name = "id"
    if name in item:
        return item[name]
    for ca in item.get("custom_attributes", ()):
        if ca.get("attribute_code") == name:
            return ca.get("value")
    ext = item.get("extension_attributes") or {}
    return ext.get(name)


def _rec_field(rec: _Rec, name: str) -> Any:
    if name in ("entity_id", "id"):
        return rec.id
    return getattr(rec, name)


def _page(rows: list[Any], c: Criteria, repeat_last: bool) -> list[Any]:
    if c.page_size is None:
        return rows
    start = (c.current_page - 1) * c.page_size
    if start >= len(rows) and repeat_last and rows:
        start = (math.ceil(len(rows) / c.page_size) - 1) * c.page_size
    return rows[start : start + c.page_size]


# -- the server ------------------------------------------------------------------------
