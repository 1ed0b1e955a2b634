"""The hot loop of a reindex: source records -> feed items -> encoded (hashed)
items spilled by state bucket. It runs in the reindex process, or in worker
processes over partitions of the source (`workers.compile_partitions`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from catalog_sync.feeds.spec import BuildContext, BuildError, FeedItem, FeedSpec, bucket_of
from catalog_sync.infra.spill import BucketSpill
from catalog_sync.observability import get_logger
from catalog_sync.records import Rejected, SourceIssue, Unchanged
from catalog_sync.sync.canonical import encode, item_json
from catalog_sync.sync.fingerprints import NEVER, Fingerprints, FingerprintSet
from catalog_sync.sync.windows import next_change

log = get_logger(__name__)


@dataclass
class Collector:
    """What one feed collects from a read: spilled items, aggregate items (merged
    in memory), issues and the number of rejected records."""

    spec: FeedSpec
    spill: BucketSpill
    aggregate: dict[str, Any] = field(default_factory=dict)  # aggregate feeds: key -> item
    issues: list[SourceIssue] = field(default_factory=list)
    rejected: int = 0
    # record fingerprints (`sync.fingerprints`): the previous run's, and this run's
    prior: Fingerprints | None = None
    found: FingerprintSet | None = None
    digest: str = ""  # the context the fingerprints are valid in
    unchanged_records: int = 0  # records not built: their fingerprint was known

    def unchanged(self, sku: str, fp: int, until: float) -> None:
        """A record not built: its group's items stand as the state has them."""
        self.unchanged_records += 1
        self.spill.same(bucket_of(sku, self.spill.buckets), sku)
        if self.found is not None:
            self.found.add(fp, until)

    def unchanged_many(self, entry: Unchanged) -> None:
        """`unchanged` for each record of `entry`."""
        self.unchanged_records += len(entry.skus)
        n = self.spill.buckets
        self.spill.same_many([(bucket_of(sku, n), sku) for sku in entry.skus])
        if self.found is not None:
            self.found.add_many(entry.fingerprints, entry.untils)

    def reject(self, sku: str | None, issues: list[SourceIssue]) -> None:
        """A record that could not be built: its items keep their state."""
        self.issues.extend(issues)
        self.rejected += 1
        if sku is not None:
            self.spill.keep(bucket_of(sku, self.spill.buckets), sku)

    def gather(self, items: Iterable[FeedItem | dict[str, Any]]) -> None:
        """Aggregate feeds: many records give the same item; merge them in memory
        (there are few: categories and attributes, times store views)."""
        for item in items:
            # builders emit JSON-ready dicts (modifiedAt aside, which encode handles)
            self.merge_one(item if isinstance(item, dict) else item_json(item))

    def merge_one(self, data: dict[str, Any]) -> None:
        spec = self.spec
        assert spec.merge is not None
        key = spec.key_of(data)
        seen = self.aggregate.get(key)
        self.aggregate[key] = data if seen is None else spec.merge(seen, data)

    def spill_aggregate(self) -> None:
        for data in self.aggregate.values():
            enc = encode(self.spec, data)  # always as a dict: one canonical form per item
            self.spill.add(bucket_of(enc.group, self.spill.buckets), enc)
        self.aggregate.clear()


def compile_record(entry: Any, collectors: list[Collector], ctx: BuildContext) -> int:
    """Build, encode and spill one source entry's items for every feed; a
    `Rejected` entry is recorded as such, an `Unchanged` one (or a record whose
    fingerprint a feed knows) as read and unchanged. How many records it was (0 for a
    rejection; `Unchanged` holds many). A record built cleanly for a feed adds its
    fingerprint to the feed's `found`."""
    if isinstance(entry, Unchanged):
        for c in collectors:
            c.unchanged_many(entry)
        return len(entry.skus)
    if isinstance(entry, Rejected):
        for c in collectors:
            c.reject(entry.sku, entry.issues)
        return 0
    fp: int | None = getattr(entry, "fingerprint", None)
    until: float | None = None
    for c in collectors:
        spec = c.spec
        spill = c.spill
        if fp is not None and c.prior is not None:
            known = c.prior.until(fp, ctx.now.timestamp())
            if known is not None:  # unchanged for this feed (another one needs a build)
                c.unchanged(entry.sku, fp, known)
                continue
        try:
            items = spec.build(entry, ctx)
            if spec.aggregate:
                c.gather(items)
                continue
            group, bucket = None, 0  # a record's items share their group: hash it once
            for item in items:
                enc = encode(spec, item)
                if enc.group != group:
                    group, bucket = enc.group, bucket_of(enc.group, spill.buckets)
                spill.add(bucket, enc)
            if fp is not None and c.found is not None:
                if until is None:
                    edge = next_change(entry, ctx.now)
                    until = NEVER if edge is None else edge.timestamp()
                c.found.add(fp, until)
        except BuildError as exc:  # the record cannot be mapped onto this feed
            issue = SourceIssue(
                str(exc),
                line=getattr(entry, "line", None),
                sku=getattr(entry, "sku", None),
                field=exc.field,
                severity="warning" if exc.severity == "warning" else "error",
            )
            c.reject(issue.sku, [issue])
        except Exception as exc:  # a builder bug must not stop the other records
            sku = getattr(entry, "sku", None)
            issue = SourceIssue(
                f"could not build {spec.name} items: {type(exc).__name__}: {exc}",
                line=getattr(entry, "line", None),
                sku=sku,
            )
            log.exception("builder failed for %s", sku)
            c.reject(sku, [issue])
    return 1
