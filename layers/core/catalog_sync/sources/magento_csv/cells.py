"""Parsers of single CSV cells: numbers, flags, dates, lists, categories, additional attributes."""

from __future__ import annotations

import math
from functools import lru_cache

from catalog_sync.catalog import (
    VISIBILITIES,
)
from catalog_sync.sources.magento_csv.columns import (
    _ATTR_CODE,
    _FALSE,
    _TRUE,
    _VISIBILITY_LABELS,
    EMPTY_VALUE,
)


class _RowError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _first(item: tuple[int, list[str]]) -> int:
    return item[0]


_NO_CLEARS: frozenset[str] = frozenset()
# product_online cells as written by Magento, and the booleans they mean
_ENABLED_CELLS = {"1": True, "2": False, "0": False}


def _multi(value: str) -> tuple[str, ...]:
    """`a|b||c` -> ("a", "b", "c"): a (multiselect) value's non-empty parts."""
    if "|" not in value:
        return (value,) if value else ()
    parts = value.split("|")
    if "" in parts:
        return tuple(v for v in parts if v)
    return tuple(parts)


# -- value parsers ---------------------------------------------------------------


def _number(cell: str) -> float:
    s = cell.strip()
    try:
        value = float(s)
    except ValueError:
        raise ValueError(f"not a number: {cell!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {cell!r}")
    return value


def _flag(cell: str, field: str) -> bool:
    s = cell.strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise _RowError(field, f"expected 0 or 1, got {cell!r}")


def _enabled(cell: str) -> bool:
    s = cell.strip().lower()
    if s in ("1", "enabled", "yes", "true"):
        return True
    if s in ("2", "0", "disabled", "no", "false"):
        return False
    raise ValueError(f"product_online must be 1 (enabled) or 2 (disabled), got {cell!r}")


def _visibility(cell: str) -> str:
    v = _VISIBILITY_LABELS.get(cell.strip().lower())
    if v is None:
        raise ValueError(
            f"unknown visibility {cell!r} (expected one of: {'; '.join(VISIBILITIES)})"
        )
    return v


@lru_cache(maxsize=4096)
def _split_list(cell: str) -> tuple[str, ...]:
    if not cell or cell == EMPTY_VALUE:
        return ()
    return tuple(s for s in (p.strip() for p in cell.split(",")) if s)


def _pairs(cell: str, field: str) -> dict[str, str]:
    if not cell or cell == EMPTY_VALUE:
        return {}
    return dict(_additional_attributes(cell))


@lru_cache(maxsize=4096)
def _categories(cell: str) -> tuple[tuple[str, ...], ...]:
    """`Default Category/Men/Tops,Default Category/Gear` -> (("Men","Tops"),("Gear",)).

    Paths are joined by `,`, which Magento does not escape inside names: a fragment
    that starts with a space and not with a root name seen in this cell (`Tops, Tees`)
    is glued back onto the previous path. `\\/` is a `/` inside a name. The
    root is left out; a bare root is no category."""
    if not cell or cell == EMPTY_VALUE:
        return ()
    roots: set[str] = set()
    paths: list[list[str]] = []
    for frag in cell.split(","):
        levels = _split_path(frag)
        first = levels[0]
        starts_path = not paths or first in roots or not frag[:1].isspace()
        if starts_path:
            roots.add(first)
            paths.append(levels)
        else:  # a comma inside the last name
            last = paths[-1]
            last[-1] = f"{last[-1]},{levels[0]}"
            last.extend(levels[1:])
    out: dict[tuple[str, ...], None] = {}
    for levels in paths:
        path = tuple(name.strip() for name in levels[1:])
        if path and all(path):
            out[path] = None
    return tuple(out)


def _split_path(fragment: str) -> list[str]:
    if "\\/" not in fragment:
        return fragment.split("/")
    return [p.replace("\x00", "/") for p in fragment.replace("\\/", "\x00").split("/")]


def _additional_attributes(cell: str) -> list[tuple[str, str]]:
    """`code=value,code2=a|b` -> [(code, value), (code2, "a|b")].

    Values may be wrapped in `"` (the export's "Fields Enclosure" option; `""`
    inside is a quote). A fragment without `=` (or whose key is not an attribute
    code) belongs to the previous value, which contained a comma, as Magento does."""
    if '"' not in cell:
        return _plain_attributes(cell)
    return _quoted_attributes(cell)


def _quoted_attributes(cell: str) -> list[tuple[str, str]]:
    """`_additional_attributes`, for any cell (values may be quoted)."""
    out: list[tuple[str, str]] = []
    pos, n = 0, len(cell)
    while pos < n:
        eq = cell.find("=", pos)
        comma = cell.find(",", pos)
        code = cell[pos:eq].strip() if eq >= 0 else ""
        if eq < 0 or (0 <= comma < eq) or not _ATTR_CODE.match(code):
            # not `code=`: the fragment belongs to the previous value (it had a comma)
            end = n if comma < 0 else comma
            if out:
                prev_code, value = out[-1]
                out[-1] = (prev_code, f"{value},{cell[pos:end]}")
            pos = end + 1
            continue
        start = eq + 1
        if cell.startswith('"', start):
            value_chars: list[str] = []
            i = start + 1
            while i < n:
                q = cell.find('"', i)
                if q < 0:
                    value_chars.append(cell[i:])
                    i = n
                    break
                value_chars.append(cell[i:q])
                if cell.startswith('"', q + 1):
                    value_chars.append('"')
                    i = q + 2
                    continue
                i = q + 1
                break
            value = "".join(value_chars)
            comma = cell.find(",", i)
            pos = n if comma < 0 else comma + 1
        else:
            end = n if comma < 0 else comma
            value = cell[start:end]
            pos = end + 1
        out.append((code, value))
    return out


_attr_code_cache: dict[str, bool] = {}


def _is_attr_code(code: str) -> bool:
    ok = _attr_code_cache.get(code)
    if ok is None:
        ok = _ATTR_CODE.match(code) is not None
        if len(_attr_code_cache) < 4096:
            _attr_code_cache[code] = ok
    return ok


def _plain_attributes(cell: str) -> list[tuple[str, str]]:
    """`_additional_attributes` of a cell without quotes (the common case)."""
    out: list[tuple[str, str]] = []
    frags = cell.split(",")
    if not frags[-1]:  # a trailing comma ends the cell, no empty fragment follows
        frags.pop()
    for frag in frags:
        code, eq, value = frag.partition("=")
        if eq:
            code = code.strip()
            if _is_attr_code(code):
                out.append((code, value))
                continue
        if out:
            prev_code, prev = out[-1]
            out[-1] = (prev_code, f"{prev},{frag}")
    return out
