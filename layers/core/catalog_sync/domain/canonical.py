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

from catalog_sync.domain.feeds import KEY_SEPARATOR, FeedItem, FeedSpec

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


_EXCLUDE = {"modified_at"}


def encode(spec: FeedSpec, item: FeedItem | dict[str, Any]) -> EncodedItem:
    """Key, group, hash and body of an item.

    A model serialises (in Rust) with its fields in declared order and no free-form
    dicts, which is already a stable key order; the body is the canonical form with
    `modifiedAt` appended. A plain dict (tombstones, merged aggregate items) is
    canonicalised with sorted keys.
    """
    if isinstance(item, FeedItem):
        canonical = item.__pydantic_serializer__.to_json(item, by_alias=True, exclude=_EXCLUDE)
        body = b"%s,\"modifiedAt\":%s}" % (canonical[:-1], orjson.dumps(item.modified_at))
        key_values = [getattr(item, name) for name in spec.identity_attrs]
        return EncodedItem(
            key=KEY_SEPARATOR.join(map(str, key_values)),
            group=str(getattr(item, spec.group_attr)),
            hash=content_hash(canonical),
            body=body,
        )
    data = item_json(item)
    return EncodedItem(
        key=spec.key_of(data),
        group=str(data[spec.group_field]),
        hash=content_hash(canonical_bytes(data)),
        body=orjson.dumps(data),
    )
