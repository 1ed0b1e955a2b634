"""The diff on a bucket's stored rows (`StateBucket` decodes only the records a run
touches) against the diff on `ItemState` objects: the same records, counts and
encoded state, byte for byte, whatever the bucket holds and the run does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import KEY_SEPARATOR
from catalog_sync.sync.canonical import EncodedItem, encode
from catalog_sync.sync.diff import Differ
from catalog_sync.sync.requests import ReindexRequest
from catalog_sync.sync.runs import RunKind
from catalog_sync.sync.state import FailingIndex, ItemState, StateBucket, Status
from tests.fakes import MemoryBlobs, MemoryState

SPEC = get_feed("products")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW_ISO = NOW.isoformat()
RUN_ID = "20260301T120000000Z-run"
STALE, FRESH = "20000101T000000000Z-old", "29990101T000000000Z-new"
SKUS = [f"P{i}" for i in range(8)]
VIEWS = ["default", "fr"]


def key(sku: str, view: str) -> str:
    return f"{sku}{KEY_SEPARATOR}{view}"


def differ(
    mode: RunKind = "sync",
    *,
    by_ids: frozenset[str] | None = None,
    complete: bool = True,
    held: str | None = None,
) -> Differ:
    request = ReindexRequest(feeds=(SPEC.name,), mode=mode, by_ids=by_ids)
    d = Differ(
        SPEC, request, RUN_ID, NOW, state=MemoryState(), blobs=MemoryBlobs(), complete=complete
    )
    d.held = held
    return d


def reference_apply(
    d: Differ,
    records: dict[str, ItemState],
    items: dict[str, EncodedItem],
    keep: set[str],
    same: set[str],
    number: int,
) -> tuple[dict[str, int], bool]:
    """The diff as it was on a dict of `ItemState`s (before rows), kept as the oracle."""
    counts = dict.fromkeys(d.counts, 0)
    request = d.request
    if request.no_reindex:
        for rec in records.values():
            if not rec.deleted or rec.held_by_saas:
                d._queue(rec)
                counts["requeued"] += 1
        return counts, False
    if request.resend_only:
        for rec in records.values():
            if rec.status is Status.RETRY:
                d._queue(rec)
                counts["requeued"] += 1
            elif rec.status is Status.PENDING and rec.run_id < d.stale_before:
                counts["stuck"] += 1
        return counts, False
    if request.cleanup:
        for k in [k for k, r in records.items() if not r.held_by_saas]:
            del records[k]
            counts["pruned"] += 1
        for rec in records.values():
            rec.hash = ""
    force = request.force and number >= request.resume_from
    if same:
        read = len(items)
        items = dict(items)
        for k, rec in records.items():
            if not rec.deleted and k not in items and SPEC.group_of_key(k).lower() in same:
                items[k] = EncodedItem(k, "", rec.hash, b"")
        counts["items_not_built"] = len(items) - read
    changed = False
    for k, item in items.items():
        found = records.get(k)
        if found is None:
            records[k] = ItemState(item.hash, Status.PENDING, changed_at=d.now_iso, run_id=d.run_id)
            counts["new"] += 1
            changed = True
        elif found.hash != item.hash or found.deleted:
            found.hash, found.deleted, found.changed_at = item.hash, False, d.now_iso
            d._queue(found)
            counts["changed"] += 1
            changed = True
        elif force or found.status is Status.RETRY:
            d._queue(found)
            counts["requeued"] += 1
        else:
            counts["unchanged"] += 1
    for k, rec in records.items():
        if k in items:
            continue
        group = SPEC.group_of_key(k).lower()
        if request.by_ids is not None and group not in request.by_ids:
            continue
        if group in keep:
            if not rec.deleted:
                counts["kept"] += 1
            continue
        if rec.deleted:
            if force and rec.held_by_saas:
                d._queue(rec)
                counts["requeued"] += 1
            continue
        if not d.complete:
            counts["deletions_withheld"] += 1
            continue
        if d.held:
            counts["deletions_held"] += 1
            continue
        rec.deleted = True
        rec.hash = encode(SPEC, SPEC.tombstone(k, d.now)).hash
        rec.changed_at = d.now_iso
        d._queue(rec)
        counts["deleted"] += 1
        changed = True
    return counts, counts["pruned"] > 0 or changed


def stored(records: dict[str, ItemState]) -> bytes:
    return StateBucket(SPEC.name, 3, 5, records).encode()


def outcome(bucket: StateBucket) -> tuple[Any, ...]:
    """What a bucket's write stores and its diff's accounting reads."""
    return (
        bucket.encode(),
        bucket.counts(),
        bucket.size,
        bucket.live(),
        bucket.waiting(),
        bucket.live_keys(),
        bucket.deleted_at(NOW_ISO),
        FailingIndex.of(bucket).encode(),
    )


def objects_outcome(bucket: StateBucket) -> tuple[Any, ...]:
    """`outcome` computed from the `ItemState`s themselves."""
    records = bucket.records
    rows = {"part": None, "records": {k: r.to_row() for k, r in records.items()}}
    counts = {s.value: 0 for s in Status} | {"deleted": 0}
    for r in records.values():
        counts[r.status.value] += 1
        counts["deleted"] += r.deleted
    return (
        orjson.dumps(rows),
        counts,
        len(records),
        sum(1 for r in records.values() if not r.deleted),
        sum(1 for r in records.values() if r.needs_send),
        [k for k, r in records.items() if not r.deleted],
        [k for k, r in records.items() if r.deleted and r.changed_at == NOW_ISO],
        FailingIndex.of(StateBucket(SPEC.name, 3, 5, dict(records))).encode(),
    )


RECORDS = st.builds(
    ItemState,
    hash=st.sampled_from(["h1", "h2", ""]),
    status=st.sampled_from(list(Status)),
    deleted=st.booleans(),
    sent_hash=st.sampled_from([None, "h1", "h2"]),
    reason=st.sampled_from([None, "bad price", "é" * 400]),
    changed_at=st.sampled_from(["", "2025-01-01T00:00:00+00:00", NOW_ISO]),
    run_id=st.sampled_from(["", STALE, FRESH]),
    attempts=st.integers(0, 3),
    sent_deleted=st.booleans(),
)
KEYS = st.sampled_from([key(s, v) for s in SKUS for v in VIEWS])
NEW_KEYS = st.sampled_from([key(s, v) for s in ("P8", "P9") for v in VIEWS])
GROUPS = st.sets(st.sampled_from([s.lower() for s in [*SKUS, "P8"]]))


@settings(max_examples=300, deadline=None)
@given(
    records=st.dictionaries(KEYS, RECORDS, max_size=16),
    read=st.dictionaries(st.one_of(KEYS, NEW_KEYS), st.sampled_from(["h1", "h2"]), max_size=8),
    same=GROUPS,
    keep=GROUPS,
    mode=st.sampled_from(get_args(RunKind)),
    by_ids=st.one_of(st.none(), GROUPS.map(frozenset)),
    complete=st.booleans(),
    held=st.sampled_from([None, "too many"]),
)
def test_diff_on_rows_matches_the_diff_on_objects(
    records: dict[str, ItemState],
    read: dict[str, str],
    same: set[str],
    keep: set[str],
    mode: RunKind,
    by_ids: frozenset[str] | None,
    complete: bool,
    held: str | None,
) -> None:
    data = stored(records)
    items = {k: EncodedItem(k, k.split(KEY_SEPARATOR)[0], h, b"{}") for k, h in read.items()}

    def run(prepare: Any) -> tuple[Any, ...]:
        bucket = StateBucket.decode(SPEC.name, 3, 5, data)
        prepare(bucket)
        d = differ(mode, by_ids=by_ids, complete=complete, held=held)
        counts, changed = d.apply(bucket, items, set(keep), set(same))
        return counts, changed, outcome(bucket), objects_outcome(bucket)

    on_rows = run(lambda bucket: None)
    on_objects = run(lambda bucket: bucket.records)  # every record an ItemState first
    reference = StateBucket.decode(SPEC.name, 3, 5, data)
    d = differ(mode, by_ids=by_ids, complete=complete, held=held)
    counts, changed = reference_apply(d, reference.records, items, set(keep), set(same), 3)

    assert on_rows == on_objects
    assert on_rows[:2] == (counts, changed)
    assert on_rows[2] == on_rows[3] == objects_outcome(reference)


def test_a_mixed_bucket_gives_the_state_of_the_object_path_and_decodes_only_what_changed():
    # Given a bucket with unchanged, changed, deleted, retrying, failing and sent items
    records = {
        key("P0", "default"): ItemState("h1", Status.SENT, sent_hash="h1", run_id=STALE),
        key("P0", "fr"): ItemState("h1", Status.SENT, sent_hash="h1", run_id=STALE),
        key("P1", "default"): ItemState("h1", Status.SENT, sent_hash="h1"),  # changes
        key("P2", "default"): ItemState("h1", Status.RETRY, reason="503", attempts=3),
        key("P3", "default"): ItemState("h1", Status.FAILED, reason="bad price", attempts=1),
        key("P4", "default"): ItemState("h1", Status.SENT, sent_hash="h1"),  # gone
        key("P5", "default"): ItemState("t", Status.SENT, deleted=True, sent_hash="t"),
        key("P6", "default"): ItemState("h1", Status.PENDING, run_id=FRESH),
    }
    data = stored(records)
    items = {
        key("P1", "default"): EncodedItem(key("P1", "default"), "P1", "h2", b"{}"),
        key("P7", "default"): EncodedItem(key("P7", "default"), "P7", "h1", b"{}"),  # new
    }
    same = {"p0", "p2", "p3", "p6"}  # not built: fingerprint known

    # When the sync diffs it on its rows
    bucket = StateBucket.decode(SPEC.name, 3, 5, data)
    counts, changed = differ().apply(bucket, items, set(), same)

    # Then only the items read, the retry requeued and the deletion became objects
    decoded = sorted(k for k, v in bucket.held() if isinstance(v, ItemState))
    assert decoded == sorted(
        [key("P1", "default"), key("P7", "default"), key("P2", "default"), key("P4", "default")]
    )
    assert changed
    assert {k: v for k, v in counts.items() if v} == {
        "new": 1,
        "changed": 1,
        "deleted": 1,
        "unchanged": 4,  # P0 x2, P3 (failed: waits for a change), P6
        "requeued": 1,  # P2, a retry
        "items_not_built": 5,
    }
    # and the state is what the object path stores
    reference = StateBucket.decode(SPEC.name, 3, 5, data)
    assert reference_apply(differ(), reference.records, items, set(), same, 3) == (counts, changed)
    assert bucket.encode() == reference.encode()
    assert (
        bucket.counts()
        == reference.counts()
        == {
            "pending": 5,  # P1, P2, P4 (its deletion), P6, P7
            "sent": 3,  # P0 x2, P5 (deleted)
            "failed": 1,
            "retry": 0,
            "deleted": 2,
        }
    )
    assert bucket.waiting() == 5


def test_rows_go_back_to_the_bytes_they_came_from():
    records = {
        key("P0", "default"): ItemState("h1", Status.SENT, sent_hash="h1", changed_at=NOW_ISO),
        key("Ünï☃", "fr"): ItemState("h2", Status.FAILED, True, None, 'bad "é"', "", "r", 2, True),
    }
    data = stored(records)
    bucket = StateBucket.decode(SPEC.name, 3, 5, data)
    assert bucket.encode() == data
    assert bucket.get(key("P0", "default")) == records[key("P0", "default")]
    assert bucket.encode() == data  # one decoded, one a row
    assert bucket.records == records
    assert bucket.encode() == data
