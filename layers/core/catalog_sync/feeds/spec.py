"""Feed specifications: item identity, grouping, bucketing, tombstones.

A feed's items are described by a pydantic model (`FeedItem` subclass), the schema of
record; builders emit plain JSON-ready dicts in the model's field order (tests check
every builder's output against its model), which is several times faster. Its identity is a tuple
of fields (per the SaaS contract); its *group* is the field shared by all items
built from one source record (for products, the SKU): items are bucketed by
group, and a rejected source record keeps the state of its whole group.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from catalog_sync.errors import CatalogSyncError

KEY_SEPARATOR = "\x1f"


class BuildError(CatalogSyncError):
    """A source record that cannot be mapped onto a feed's items (no URL key for a
    slug, a category path that cannot become a slug, ...): the record is rejected
    for that feed, reported with its SKU and `field`, and keeps its previous state."""

    def __init__(self, field: str, message: str, *, severity: str = "error") -> None:
        super().__init__(message)
        self.field = field
        self.severity = severity


class WireModel(BaseModel):
    """Base of every model of a wire format: camelCase JSON, nothing else allowed,
    immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class FeedItem(WireModel):
    """Base of every feed item model: camelCase JSON, `deleted`, `modifiedAt`."""

    model_config = ConfigDict(ser_json_inf_nan="null")

    deleted: bool = False
    modified_at: datetime


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What item builders may depend on besides the source record."""

    now: datetime
    store_views: Sequence[tuple[str, str]] = (("default", "base"),)  # (store view, website)
    feeds: frozenset[str] = frozenset({"products"})  # the feeds being built in this run
    aco: AcoContext | None = None  # the ACO target's options (None: defaults)


@dataclass(frozen=True, slots=True)
class AcoContext:
    """What the ACO target's builders need besides the records (from the settings)."""

    locales: tuple[tuple[str, str], ...] = ()  # (store view, locale); missing: the view code
    currencies: tuple[tuple[str, str], ...] = ()  # (website, currency); missing: USD
    media_base_url: str | None = None  # prefixed to image paths (None: paths as exported)

    def locale(self, view: str) -> str:
        for code, locale in self.locales:
            if code == view:
                return locale
        return view

    def currency(self, website: str) -> str:
        for code, currency in self.currencies:
            if code == website:
                return currency
        return "USD"


@dataclass(frozen=True)
class FeedSpec:
    name: str
    # JSON (camelCase) field names, in contract order; a dotted name is a nested field
    # (ACO's `source.locale`)
    identity: tuple[str, ...]
    group_field: str  # JSON field name shared by the items of one source record
    model: type[BaseModel]  # FeedItem subclasses, or a target's wire model
    build: Callable[[Any, BuildContext], Iterable[FeedItem | dict[str, Any]]]
    # Aggregate feeds (categories, productAttributes) get the same item from many
    # source records: `merge` combines two versions of one item (JSON dicts). Their
    # deletions are withheld whenever any source record was rejected, since the
    # rejected record may have been the last one to reference an item.
    merge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None
    # Items that are exactly the wire JSON (no `deleted`/`modifiedAt`): a tombstone is
    # then the identity fields only (ACO's delete keys), nested as the identity says.
    keys_only_tombstone: bool = False
    # Feeds whose latest items must be exported before this feed's (ACO: metadata
    # before products, price books before prices); see `sync.export`.
    after: tuple[str, ...] = ()
    # The builder's version: bump it when the builder makes other items from the same
    # record (a new field, another mapping): it voids the feed's record fingerprints
    # (`sync.fingerprints`), so the next run builds every record again.
    version: int = 1

    @property
    def flat_identity(self) -> bool:
        return not any("." in f for f in self.identity)

    def key_of(self, item: dict[str, Any]) -> str:
        """The identity key of an item given as a JSON dict."""
        return KEY_SEPARATOR.join(str(_field(item, f)) for f in self.identity)

    def identity_of(self, key: str) -> dict[str, str]:
        return dict(zip(self.identity, key.split(KEY_SEPARATOR), strict=True))

    def group_of_key(self, key: str) -> str:
        return self.identity_of(key)[self.group_field]

    def tombstone(self, key: str, now: datetime) -> dict[str, Any]:
        """A deleted item: identity fields, `deleted: true`, `modifiedAt`."""
        if self.keys_only_tombstone:
            out: dict[str, Any] = {}
            for name, value in self.identity_of(key).items():
                *parents, last = name.split(".")
                node = out
                for p in parents:
                    node = node.setdefault(p, {})
                node[last] = value
            return out
        item: dict[str, Any] = dict(self.identity_of(key))
        item["deleted"] = True
        item["modifiedAt"] = now
        return item

    @property
    def aggregate(self) -> bool:
        return self.merge is not None


def _field(item: dict[str, Any], name: str) -> Any:
    if "." not in name:
        return item[name]
    node: Any = item
    for part in name.split("."):
        node = node[part]
    return node


def bucket_of(group: str, buckets: int) -> int:
    """Stable bucket of a group value. SKUs compare case-insensitively in Magento,
    so the group is lower-cased: case variants of one SKU share a bucket."""
    digest = hashlib.blake2b(group.lower().encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets
