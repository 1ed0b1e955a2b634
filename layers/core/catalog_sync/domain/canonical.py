"""Canonical form and content hash of feed items.

The canonical form of an item is its JSON with keys sorted at every level,
numbers as the model's types make them (a float field always serialises as a
float, so "52" and "52.0000" in the source hash the same), lists in the order
the builders fix (they sort everything whose order carries no meaning), and
`modifiedAt` left out: touching an item without changing it changes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from catalog_sync.domain.feeds import FeedItem, FeedSpec

EXCLUDED_FROM_HASH = frozenset({"modifiedAt"})


@dataclass(frozen=True, slots=True)
class EncodedItem:
    key: str  # identity key (see FeedSpec.key_of)
    group: str  # group value (bucketing)
    hash: str  # content hash of the canonical form
    body: bytes  # the item's JSON, as sent


def canonical_bytes(item: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {k: v for k, v in item.items() if k not in EXCLUDED_FROM_HASH},
        option=orjson.OPT_SORT_KEYS,
    )


def content_hash(canonical: bytes) -> str:
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


def item_json(item: FeedItem | dict[str, Any]) -> dict[str, Any]:
    """The item as JSON-typed python data (camelCase keys)."""
    if isinstance(item, FeedItem):
        return item.model_dump(mode="json", by_alias=True)
    return orjson.loads(orjson.dumps(item))


def encode(spec: FeedSpec, item: FeedItem | dict[str, Any]) -> EncodedItem:
    data = item_json(item)
    key = spec.key_of(data)
    return EncodedItem(
        key=key,
        group=str(data[spec.group_field]),
        hash=content_hash(canonical_bytes(data)),
        body=orjson.dumps(data),
    )
