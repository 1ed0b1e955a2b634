"""What a run covers, decided by the engine: Magento product ids resolved to SKUs
(through the source), and where an interrupted resync resumes (its checkpoint)."""

from __future__ import annotations

from catalog_sync.errors import RequestError
from catalog_sync.ports import CatalogSource, FeedState, ProductIdSource
from catalog_sync.records import SourceIssue

RESUMABLE = ("resync", "resync-continue", "resync-cleanup")


def skus_of_product_ids(source: CatalogSource, ids: tuple[int, ...]) -> frozenset[str]:
    """`--by-ids ... --id-type productId`: Magento product ids to (lower-cased) SKUs,
    through the source (only the REST API knows ids). Unknown ids are reported in
    the run; none known is an error."""
    if not isinstance(source, ProductIdSource):
        raise RequestError(
            "the Magento export CSV carries no product ids: use --id-type sku with this "
            "source, or the Magento REST API as the source"
        )
    found = source.skus_for_ids(list(ids))
    missing = [i for i in ids if i not in found]
    if not found:
        raise RequestError(
            f"no product with id {', '.join(map(str, missing))} in Magento: nothing to resync"
        )
    for number in missing:
        source.note(
            SourceIssue(
                f"product id {number} is not in Magento: skipped (a deleted product is "
                "sent as deleted by the next full read)",
                field="productId",
                severity="warning",
            )
        )
    return frozenset(found[i].lower() for i in ids if i in found)


def find_checkpoint(state: FeedState, feed: str) -> tuple[int, str]:
    """Where an interrupted resync of `feed` got to: (bucket to resume from, its run
    id). Read under the feed's lease, so no run moves it meanwhile."""
    for run in state.list_runs(feed, limit=20):
        if run.kind in RESUMABLE:
            if run.status in ("running", "failed"):
                return run.buckets_done, run.run_id
            raise RequestError(
                f"no interrupted resync of {feed} to continue: the last one ({run.run_id}) "
                f"is {run.status}"
            )
    raise RequestError(f"no resync of {feed} to continue")
