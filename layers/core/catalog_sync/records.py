"""What a catalog source hands to the core: records, rejections and a read report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class SourceIssue:
    """One problem with the input, naming where it is: line, SKU and field."""

    message: str
    line: int | None = None
    sku: str | None = None
    field: str | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.sku is not None:
            where.append(f"sku {self.sku!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def to_dict(self) -> dict[str, object]:
        return {
            "message": self.message,
            "line": self.line,
            "sku": self.sku,
            "field": self.field,
            "severity": self.severity,
        }


@dataclass(slots=True)
class Rejected:
    """A source record that could not be turned into feed items.

    Its items keep whatever state they had: a bad row is never a deletion, and
    never sent. `sku` is the group value (`None` when the row had no SKU at all).
    """

    sku: str | None
    issues: list[SourceIssue]


@dataclass(frozen=True, slots=True)
class Unchanged:
    """Source records whose raw rows are those a previous run built (the same
    fingerprints, see `sync.fingerprints`): they are not built, their items stand.
    In bulk (a source skips many at once, at a few microseconds each): `skus` (group
    values, lower-cased), their `fingerprints` and `untils` (epoch seconds until which
    that holds), aligned."""

    skus: list[str]
    fingerprints: list[int]
    untils: list[float]


@dataclass(slots=True)
class ReadReport:
    """How a read went, known once the source iterator is exhausted.

    `complete` is False when the source could not be read to its end (truncated
    or unreadable file, failed page): such a read never produces deletions.
    """

    complete: bool = True
    rows: int = 0
    records: int = 0
    issues: list[SourceIssue] = field(default_factory=list)
    store_views: list[str] = field(default_factory=list)
