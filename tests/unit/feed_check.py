"""Builders emit plain JSON-ready dicts; the pydantic models are the schema of record.

`checked(model, data)` validates a builder's dict with its model, checks that the
model dumps back to exactly the same JSON (same keys, same types: 52.0 is not 52),
`modifiedAt` aside (a datetime in the dict, a string in the dump), and returns the
model instance, so tests can read items by attribute."""

from __future__ import annotations

from typing import Any, TypeVar

from catalog_sync.feeds.spec import FeedItem
from catalog_sync.sync.canonical import canonical_bytes

M = TypeVar("M", bound=FeedItem)


def checked(model: type[M], data: dict[str, Any]) -> M:
    assert isinstance(data, dict), f"builders emit dicts, got {type(data).__name__}"
    item = model.model_validate(data)
    dumped = item.model_dump(mode="json", by_alias=True)
    assert list(dumped) == list(data), "the dict's keys are not the model's fields in order"
    assert canonical_bytes(dumped) == canonical_bytes(data), (
        f"the dict drifted from {model.__name__}:\n{canonical_bytes(data)!r}\n"
        f"{canonical_bytes(dumped)!r}"
    )
    assert data["modifiedAt"] == item.modified_at
    return item


def checked_all(model: type[M], items: Any) -> list[M]:
    return [checked(model, d) for d in items]
