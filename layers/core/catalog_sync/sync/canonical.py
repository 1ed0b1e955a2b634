"""Canonical form and content hash of feed items.

The canonical form of an item is its JSON with keys sorted at every level,
numbers as the model's types make them (a float field always serialises as a
float, so "52" and "52.0000" in the source hash the same), lists in the order
the builders fix (they sort everything whose order carries no meaning), and
`modifiedAt` left out: touching an item without changing it changes nothing.

Builders emit plain JSON-ready dicts (camelCase keys, floats where the model
has floats, datetimes as pydantic writes them, `modifiedAt` as a datetime); the
pydantic models are the schema of record (tests check that the dicts validate
and round-trip). A model instance given to `encode` is dumped to the same dict,
so it hashes the same.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

import orjson
import xxhash
from pydantic import TypeAdapter

from catalog_sync.feeds.spec import KEY_SEPARATOR, FeedItem, FeedSpec

EXCLUDED_FROM_HASH = frozenset({"modifiedAt"})

_dumps = orjson.dumps
_SORT = orjson.OPT_SORT_KEYS
_xxh128 = xxhash.xxh3_128_hexdigest
_DATETIME = TypeAdapter(datetime)


class EncodedItem(NamedTuple):
    """An item ready to store and send (a tuple: made for every item of every run)."""

    key: str  # identity key (see FeedSpec.key_of)
    group: str  # group value (bucketing)
    hash: str  # content hash of the canonical form
    body: bytes  # the item's JSON, as sent


def canonical_bytes(item: dict[str, Any]) -> bytes:
    return _dumps(
        {k: v for k, v in item.items() if k not in EXCLUDED_FROM_HASH},
        option=_SORT,
    )


def content_hash(canonical: bytes) -> str:
    return _xxh128(canonical)


@lru_cache(maxsize=1024)
def json_datetime(value: datetime) -> str:
    """A datetime as the feed models write it in JSON (`2024-03-01T00:00:00Z`)."""
    out: str = _DATETIME.dump_python(value, mode="json")
    return out


def item_json(item: FeedItem | dict[str, Any]) -> dict[str, Any]:
    """The item as JSON-typed python data (camelCase keys)."""
    if isinstance(item, FeedItem):
        return item.model_dump(mode="json", by_alias=True)
    return orjson.loads(_dumps(item))


# One run stamps every item with the same `now` object: its bytes are made once.
_last_stamp: tuple[Any, bytes] = (object(), b"")


def _stamp(value: Any) -> bytes:
    global _last_stamp
    last = _last_stamp
    if value is last[0]:
        return last[1]
    out = _dumps(value)
    _last_stamp = (value, out)
    return out


def encode(spec: FeedSpec, item: FeedItem | dict[str, Any]) -> EncodedItem:
    """Key, group, hash and body of an item (a builder's dict, a merged aggregate
    item, a tombstone or a model instance).

    The hash is XXH3-128 of the item's sorted-keys JSON without `modifiedAt`; the
    body is that JSON with `"modifiedAt"` appended.
    """
    if isinstance(item, FeedItem):
        data = item.model_dump(mode="json", by_alias=True)
        data["modifiedAt"] = item.modified_at
    else:
        data = item
    if "modifiedAt" in data:
        rest = dict(data)
        modified = rest.pop("modifiedAt")
        canonical = _dumps(rest, option=_SORT)
        stamp = _stamp(modified)
        if len(canonical) > 2:
            body = b'%s,"modifiedAt":%s}' % (canonical[:-1], stamp)
        else:
            body = b'{"modifiedAt":%s}' % stamp
    else:
        canonical = body = _dumps(data, option=_SORT)
    identity = spec.identity
    if len(identity) == 2 and spec.flat_identity:
        key = f"{data[identity[0]]}{KEY_SEPARATOR}{data[identity[1]]}"
    else:
        key = spec.key_of(data)
    return EncodedItem(key, str(data[spec.group_field]), _xxh128(canonical), body)
