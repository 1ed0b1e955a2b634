"""Value parsers both sources share, so the export CSV and the REST API give the same
records: Magento's date forms (ISO, US and dotted, with or without a time)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache


class DateError(ValueError):
    pass


_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_US_DATE = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?"
)
_DOT_DATE = re.compile(
    r"(\d{1,2})\.(\d{1,2})\.(\d{2}|\d{4})(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?"
)


@lru_cache(maxsize=4096)
def parse_date(cell: str) -> datetime:
    """A Magento export date, leniently: `2015-10-23 00:35:03`, `3/6/24`,
    `3/6/24, 8:59 PM` (U+202F before PM in newer ICU), `16.03.15, 17:08`. Naive
    times are taken as UTC (the export does not say the zone)."""
    s = cell.strip().replace("\u202f", " ").replace("\u00a0", " ")
    try:
        m = _ISO_DATE.fullmatch(s)
        if m:
            y, mo, d, hh, mm, ss = m.groups()
            return _dt(int(y), int(mo), int(d), hh, mm, ss)
        m = _US_DATE.fullmatch(s)
        if m:
            mo, d, y, hh, mm, ss, ampm = m.groups()
            hour = int(hh) if hh else 0
            if ampm:
                if not 1 <= hour <= 12:
                    raise ValueError(hour)
                hour = hour % 12 + (12 if ampm.lower() == "pm" else 0)
            return _dt(_year(y), int(mo), int(d), str(hour), mm, ss)
        m = _DOT_DATE.fullmatch(s)
        if m:
            d, mo, y, hh, mm, ss = m.groups()
            return _dt(_year(y), int(mo), int(d), hh, mm, ss)
    except ValueError:
        pass
    raise DateError(cell)


def _year(y: str) -> int:
    return int(y) + 2000 if len(y) == 2 else int(y)


def _dt(y: int, mo: int, d: int, hh: str | None, mm: str | None, ss: str | None) -> datetime:
    return datetime(y, mo, d, int(hh or 0), int(mm or 0), int(ss or 0), tzinfo=UTC)


_DECIMAL = re.compile(r"-?\d+\.\d+")
_DATE_START = re.compile(r"\d{1,4}[-/.]\d")


def attribute_value(value: str) -> str:
    """An attribute value in one form whichever source read it: a decimal without its
    trailing zeros (REST's `12.000000`, the export's `12.0000`: `12`; `12.50`: `12.5`)
    and a date as `YYYY-MM-DD` (`YYYY-MM-DD HH:MM:SS` when it has a time of day):
    REST's `2024-03-06 00:00:00` and the export's `3/6/24` are the same date. Anything
    else is left as it is."""
    if not value or not (value[0].isdigit() or value[0] == "-"):
        return value
    if _DECIMAL.fullmatch(value):
        text = value.rstrip("0").rstrip(".")
        return "0" if text in ("", "-", "-0") else text
    if _DATE_START.match(value):
        try:
            stamp = parse_date(value)
        except DateError:
            return value
        if stamp.hour or stamp.minute or stamp.second:
            return stamp.strftime("%Y-%m-%d %H:%M:%S")
        return stamp.strftime("%Y-%m-%d")
    return value
