"""The feed API's rules as the local receiver applies them: item identity per feed,
item validation (`invalidFeedItems`), and the receiver's fault plans (see
`devstack.receiver` for what a plan does)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

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
class QueuedFault:
    remaining: int
    status: int | None = None
    retry_after: float | None = None
    latency_ms: int = 0
    drop: bool = False


def parse_fault_plan(plan: Any) -> tuple[QueuedFault | None, dict[str, frozenset[str]]]:
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
    queued = QueuedFault(remaining=1)
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


_NONE = object()  # equal to no value


def validate_items(
    feed: str, items: list[Any], reject: dict[str, frozenset[str]] | None = None
) -> tuple[list[tuple[tuple[Any, ...], dict[str, Any]]], list[dict[str, Any]]]:
    """Valid items as (identity, item), and the `invalidFeedItems` entries.

    An item as parsed JSON gives it (a dict, identity values non-empty strings or
    integers, `deleted` a boolean, the same `modifiedAt` as the item before or a valid
    one) passes the checks in one go; any other is checked field by field, for the
    entry that says what is wrong with it."""
    identity = IDENTITY[feed]
    valid: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    invalid: list[dict[str, Any]] = []
    last_modified: Any = _NONE  # the last modifiedAt found valid (items share their run's)
    for index, item in enumerate(items):
        key: tuple[Any, ...] | None = None
        if type(item) is dict:
            try:
                key = tuple(map(item.__getitem__, identity))
            except KeyError:
                key = None
            if key is not None:
                for v in key:
                    if not ((type(v) is str and v) or type(v) is int):
                        key = None
                        break
            if key is not None and type(item.get("deleted")) is not bool:
                key = None
            if key is not None:
                modified = item.get("modifiedAt")
                if modified != last_modified:
                    if _is_iso8601(modified):
                        last_modified = modified
                    else:
                        key = None
        if key is None:
            key, problem = _check_item(index, item, identity)
            if problem is not None:
                invalid.append(problem)
                continue
            assert key is not None
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
                invalid.append(
                    _bad(
                        index,
                        "rejected",
                        f"item {index}{_describe(item, identity)}: rejected by the fault plan "
                        f"({hit[0]}={hit[1]})",
                    )
                )
                continue
        valid.append((key, item))
    return valid, invalid


def _bad(index: int, code: str, message: str) -> dict[str, Any]:
    return {"itemIndex": index, "code": code, "message": message}


def _check_item(
    index: int, item: Any, identity: tuple[str, ...]
) -> tuple[tuple[Any, ...] | None, dict[str, Any] | None]:
    """(identity, None) of an item that passes the checks, else (None, its entry)."""
    if not isinstance(item, dict):
        return None, _bad(index, "invalid_item", f"item {index}: not a JSON object")
    try:
        key = tuple(item[f] for f in identity)
    except KeyError:
        missing = [f for f in identity if f not in item]
        return None, _bad(
            index,
            "missing_field",
            f"item {index}{_describe(item, identity)}: identity field {missing[0]!r} is missing",
        )
    wrong = next(
        (
            f
            for f, v in zip(identity, key, strict=True)
            if isinstance(v, bool) or not isinstance(v, str | int) or v == ""
        ),
        None,
    )
    if wrong is not None:
        return None, _bad(
            index,
            "invalid_value",
            f"item {index}{_describe(item, identity)}: identity field {wrong!r} must be "
            f"a non-empty string, got {orjson.dumps(item[wrong]).decode()[:80]}",
        )
    deleted = item.get("deleted")
    if not isinstance(deleted, bool):
        what = "is missing" if "deleted" not in item else "must be a boolean"
        return None, _bad(
            index,
            "missing_field" if "deleted" not in item else "invalid_value",
            f"item {index}{_describe(item, identity)}: field 'deleted' {what}",
        )
    if not _is_iso8601(item.get("modifiedAt")):
        absent = "modifiedAt" not in item
        return None, _bad(
            index,
            "missing_field" if absent else "invalid_value",
            f"item {index}{_describe(item, identity)}: field 'modifiedAt' "
            + ("is missing" if absent else "must be an ISO 8601 date-time"),
        )
    return key, None
