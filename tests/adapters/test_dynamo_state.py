"""DynamoFeedState against the session's moto server (real HTTP)."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from catalog_sync.aws.dynamodb import DynamoFeedState
from catalog_sync.errors import (
    CatalogSyncError,
    ConfigError,
    ConflictError,
    LeaseHeldError,
)
from catalog_sync.sync.runs import FeedMeta, PartResult, RunRecord
from catalog_sync.sync.state import (
    CountsDelta,
    ItemState,
    PartRef,
    Recorded,
    StateBucket,
    Status,
    apply_outcomes,
)
from devstack.localaws import LocalAws

NOW = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)


def bucket_with(feed: str, bucket: int, n: int, *, version: int = 0) -> StateBucket:
    records = {
        f"sku-{bucket}-{i}": ItemState(
            hash=hashlib.sha256(f"{bucket}/{i}".encode()).hexdigest(),
            status=Status.SENT if i % 3 else Status.PENDING,
            deleted=i % 7 == 0,
            changed_at="2026-11-29T05:00:00+00:00",
            run_id="r1",
        )
        for i in range(n)
    }
    part = PartRef(
        key=f"snapshots/{feed}/r1/part-{bucket:04d}.jsonl.gz",
        items=n,
        bytes=10,
        sha256="ab",
        run_id="r1",
    )
    return StateBucket(feed, bucket, version, records, part)


def get_raw(aws: LocalAws, pk: str, sk: str) -> dict[str, Any]:
    item: dict[str, Any] = aws.dynamodb.get_item(
        TableName=aws.names.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}
    )["Item"]
    return item


@pytest.fixture
def aws(aws_clients: Callable[..., LocalAws]) -> LocalAws:
    return aws_clients()


def test_dynamo_state_missing_buckets_read_as_empty_version_zero(aws: LocalAws) -> None:
    got = aws.state().read_buckets("products", [3, 1])
    assert [(b.feed, b.bucket, b.version, b.records, b.part) for b in got] == [
        ("products", 3, 0, {}, None),
        ("products", 1, 0, {}, None),
    ]


def test_dynamo_state_write_then_read_round_trips_and_bumps_version(aws: LocalAws) -> None:
    state = aws.state()
    bucket = bucket_with("products", 5, 20)

    state.write_bucket(bucket)

    assert bucket.version == 1
    [back] = state.read_buckets("products", [5])
    assert back.version == 1
    assert back.records == bucket.records
    assert back.part == bucket.part
    raw = get_raw(aws, "state#products#0005", "bucket")
    assert raw["items"] == {"N": "20"}
    assert {k: int(v["N"]) for k, v in raw["counts"]["M"].items()} == bucket.counts()
    assert "updated_at" in raw


def test_dynamo_state_stale_version_raises_conflict(aws: LocalAws) -> None:
    state = aws.state()
    first = bucket_with("products", 0, 2)
    state.write_bucket(first)  # version 1 now
    [reader_a] = state.read_buckets("products", [0])
    [reader_b] = state.read_buckets("products", [0])

    state.write_bucket(reader_a)
    with pytest.raises(ConflictError, match="bucket 0 of feed 'products'"):
        state.write_bucket(reader_b)

    assert reader_b.version == 1  # unchanged on failure
    with pytest.raises(ConflictError):  # a second "first write" of the same bucket
        state.write_bucket(bucket_with("products", 0, 1))
    assert state.read_buckets("products", [0])[0].version == 2


def test_dynamo_state_reads_many_buckets_in_batches_of_100(aws: LocalAws) -> None:
    state = aws.state()
    for b in (0, 150, 249):
        state.write_bucket(bucket_with("products", b, 3))
    state.write_bucket(bucket_with("other", 150, 9))

    wanted = [*range(250), 150]  # duplicates are answered too
    got = state.read_buckets("products", wanted)

    assert [g.bucket for g in got] == wanted
    written = {g.bucket: len(g.records) for g in got if g.version}
    assert written == {0: 3, 150: 3, 249: 3}
    assert got[-1].records == got[150].records


class UnprocessingClient:
    """The real client, except that every first BatchGetItem call answers only half
    its keys and returns the rest as UnprocessedKeys (as DynamoDB does when throttled)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        [(table, req)] = RequestItems.items()
        keys = req["Keys"]
        self.calls.append(len(keys))
        if len(keys) == 1:
            return dict(self.real.batch_get_item(RequestItems=RequestItems))
        half = len(keys) // 2
        response = self.real.batch_get_item(RequestItems={table: {**req, "Keys": keys[:half]}})
        return {**response, "UnprocessedKeys": {table: {**req, "Keys": keys[half:]}}}


def test_dynamo_state_retries_unprocessed_keys(aws: LocalAws) -> None:
    for b in range(4):
        aws.state().write_bucket(bucket_with("products", b, 1))
    client = UnprocessingClient(aws.dynamodb)
    state = DynamoFeedState(client, aws.names.table, sleep=lambda _s: None)

    got = state.read_buckets("products", [0, 1, 2, 3])

    assert [g.version for g in got] == [1, 1, 1, 1]
    assert client.calls == [4, 2, 1]


def test_dynamo_state_large_bucket_overflows_to_blob_store(aws: LocalAws) -> None:
    blobs = aws.blobs()
    state = aws.state(overflow=blobs)
    big = bucket_with("products", 7, 12_000)  # sha256 hex hashes barely compress

    state.write_bucket(big)
    state.write_bucket(big)  # a second version gets its own object

    raw = get_raw(aws, "state#products#0007", "bucket")
    assert "data" not in raw
    key = raw["overflow"]["S"]
    assert key.startswith("state/products/0007/2-") and key.endswith(".bin")
    assert blobs.exists(key)
    [back] = state.read_buckets("products", [7])
    assert back.version == 2
    assert back.records == big.records

    # shrinking brings the data back inline
    back.records = dict(list(back.records.items())[:10])
    state.write_bucket(back)
    raw = get_raw(aws, "state#products#0007", "bucket")
    assert "overflow" not in raw and "data" in raw
    assert len(state.read_buckets("products", [7])[0].records) == 10


def test_dynamo_state_large_bucket_without_overflow_suggests_more_buckets(aws: LocalAws) -> None:
    state = aws.state(overflow=None, max_inline_bytes=1_000)
    with pytest.raises(CatalogSyncError, match=r"bucket 2 of feed .products.*more state buckets"):
        state.write_bucket(bucket_with("products", 2, 200))
    assert state.read_buckets("products", [2])[0].version == 0


def test_dynamo_state_meta_runs_and_part_results_round_trip(aws: LocalAws) -> None:
    state = aws.state()
    assert state.read_meta("products") is None
    assert state.get_run("products", "nope") is None
    meta = FeedMeta(feed="products", buckets=16, latest_manifest="m.json", last_run_id="r3")
    state.write_meta(meta)
    runs = [
        RunRecord(
            feed="products",
            run_id=f"2026112905{i:02d}-x",
            kind="sync",
            started_at=f"t{i}",
            counts={"new": i},
        )
        for i in range(5)
    ]
    for run in runs:
        state.put_run(run)
    state.put_run(RunRecord(feed="other", run_id="2026112999-x", kind="sync", started_at="t"))
    for b in (3, 1, 12):
        state.put_part_result(
            PartResult(
                feed="products",
                run_id=runs[4].run_id,
                bucket=b,
                finished_at="t",
                counts={"sent": b},
                failures=[{"key": "a", "reason": "bad"}],
            )
        )
    runs[4].status = "completed"
    state.put_run(runs[4])  # an update replaces the record

    assert state.read_meta("products") == meta
    assert state.get_run("products", runs[2].run_id) == runs[2]
    assert state.list_runs("products") == list(reversed(runs))
    assert [r.run_id for r in state.list_runs("products", limit=2)] == [
        runs[4].run_id,
        runs[3].run_id,
    ]
    assert state.list_runs("products")[0].status == "completed"
    parts = state.list_part_results("products", runs[4].run_id)
    assert [p.bucket for p in parts] == [1, 3, 12]
    assert parts[0].failures == [{"key": "a", "reason": "bad"}]
    assert state.list_part_results("products", runs[3].run_id) == []


def test_dynamo_state_lease_is_exclusive_until_it_expires(aws: LocalAws) -> None:
    state = aws.state()
    state.acquire_lease("products", "run-a", NOW, 600)

    with pytest.raises(LeaseHeldError) as err:
        state.acquire_lease("products", "run-b", NOW + timedelta(seconds=599), 600)
    assert err.value.holder == "run-a"
    assert err.value.expires_at == "2026-11-29T05:10:00+00:00"
    assert "run-a" in str(err.value)

    state.acquire_lease("products", "run-a", NOW + timedelta(seconds=30), 600)  # renewal
    state.acquire_lease("other", "run-b", NOW, 600)  # leases are per feed
    state.acquire_lease("products", "run-b", NOW + timedelta(seconds=631), 600)  # expired
    raw = get_raw(aws, "feed#products", "lease")
    assert raw["holder"] == {"S": "run-b"}
    assert int(raw["ttl"]["N"]) > int(raw["expires_epoch"]["N"])


def test_dynamo_state_release_lease_only_by_its_holder(aws: LocalAws) -> None:
    state = aws.state()
    state.release_lease("products", "nobody")  # nothing to release: no error
    state.acquire_lease("products", "run-a", NOW, 600)

    state.release_lease("products", "run-b")  # not the holder: no effect
    with pytest.raises(LeaseHeldError):
        state.acquire_lease("products", "run-b", NOW, 600)

    state.release_lease("products", "run-a")
    state.acquire_lease("products", "run-b", NOW, 600)


def test_dynamo_state_missing_table_raises_config_error(aws: LocalAws) -> None:
    state = DynamoFeedState(aws.dynamodb, "no-such-table")
    with pytest.raises(ConfigError, match="no-such-table"):
        state.read_buckets("products", [0])
    with pytest.raises(ConfigError, match="no-such-table"):
        state.write_bucket(bucket_with("products", 0, 1))
    with pytest.raises(ConfigError, match="no-such-table"):
        state.read_meta("products")
    with pytest.raises(ConfigError, match="no-such-table"):
        state.acquire_lease("products", "a", NOW, 60)


def test_dynamo_state_overflow_objects_do_not_pile_up(aws: LocalAws) -> None:
    blobs = aws.blobs()
    state = aws.state(overflow=blobs)
    big = bucket_with("products", 3, 12_000)
    prefix = "state/products/0003/"

    for _ in range(5):
        state.write_bucket(big)

    # the current version's object and the one it replaced (a reader may hold it)
    assert sorted(k.split("/")[-1].split("-")[0] for k in blobs.list_keys(prefix)) == ["4", "5"]
    [back] = state.read_buckets("products", [3])
    assert back.version == 5 and back.records == big.records

    # a writer that loses the race leaves no object behind
    stale = copy.deepcopy(big)
    stale.version = 4
    with pytest.raises(ConflictError):
        state.write_bucket(stale)
    assert len(list(blobs.list_keys(prefix))) == 2

    # objects of versions after the replaced one are never touched (another writer's)
    blobs.put_bytes(f"{prefix}7-someoneelse.bin", b"x")
    state.write_bucket(back)
    assert blobs.exists(f"{prefix}7-someoneelse.bin")
    assert len(state.read_buckets("products", [3])[0].records) == 12_000


def test_dynamo_state_keeps_the_failing_items_beside_each_bucket(aws: LocalAws) -> None:
    from catalog_sync.sync.state import FAILING_INDEX_CAP

    state = aws.state(overflow=aws.blobs())
    small = bucket_with("products", 1, 50)
    for i, key in enumerate(sorted(small.records)[:3]):
        rec = small.records[key]
        rec.status = Status.FAILED if i else Status.RETRY
        rec.reason = f"item {i}: " + "x" * 1000
        rec.attempts = i + 1
    many = bucket_with("products", 2, 12_000)  # overflows; more failing than the index holds
    for key in sorted(many.records)[: FAILING_INDEX_CAP + 5]:
        many.records[key].status = Status.FAILED
    clean = bucket_with("products", 3, 20)
    for b in (small, many, clean):
        state.write_bucket(b)

    index = state.read_failing("products", [1, 2, 3, 4])

    assert sorted(index) == [1, 2]  # nothing failing in 3; 4 never written
    one = index[1]
    assert one.complete and list(one.items) == sorted(small.records)[:3]
    for key, rec in one.items.items():
        full = small.records[key]
        assert (rec.status, rec.attempts, rec.changed_at) == (
            full.status, full.attempts, full.changed_at,
        )  # fmt: skip
        assert rec.reason == full.reason[:300]  # type: ignore[index]
    assert not index[2].complete and len(index[2].items) == FAILING_INDEX_CAP
    assert "overflow" in get_raw(aws, "state#products#0002", "bucket")
    # fixed: the index goes with the records' next write
    for rec in small.records.values():
        rec.status = Status.SENT
    state.write_bucket(small)
    assert 1 not in state.read_failing("products", [1])


def test_dynamo_state_keeps_status_counts_beside_each_bucket(aws: LocalAws) -> None:
    state = aws.state(overflow=aws.blobs())
    small, big = bucket_with("products", 1, 30), bucket_with("products", 2, 12_000)
    big.records[sorted(big.records)[0]].status = Status.FAILED
    for b in (small, big):
        state.write_bucket(b)

    counts = state.read_counts("products", [1, 2, 3])

    assert sorted(counts) == [1, 2]  # 3 was never written
    for b in (small, big):
        got = counts[b.bucket]
        assert got.items == len(b.records) and got.counts == b.counts()
        assert got.updated_at
    assert counts[2].counts["failed"] == 1


def _journal_keys(aws: LocalAws, feed: str) -> list[str]:
    items = aws.dynamodb.query(
        TableName=aws.names.table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"outcomes#{feed}"}},
    )["Items"]
    return [i["sk"]["S"] for i in items]


def test_dynamo_state_outcome_journal_is_read_until_a_write_folds_it(aws: LocalAws) -> None:
    state = aws.state()
    for b in (1, 2):
        state.write_bucket(bucket_with("products", b, 6))
    sent, retry = bucket_with("products", 1, 6).records, bucket_with("products", 2, 6).records
    key1, key2 = "sku-1-3", "sku-2-3"  # pending, live

    keys = state.record_outcomes(
        "products",
        {
            2: {key2: Recorded(retry[key2].hash, False, "retry", "503 from the API")},
            1: {key1: Recorded(sent[key1].hash, False, "sent")},
        },
    )

    assert len(keys) == 2 and _journal_keys(aws, "products") == keys
    one, two = state.read_buckets("products", [1, 2])
    assert one.version == 1 and one.records[key1].status is Status.SENT  # applied on read
    assert one.records[key1].sent_hash == sent[key1].hash
    assert (two.records[key2].status, two.records[key2].attempts) == (Status.RETRY, 1)
    assert state.read_counts("products", [1])[1].counts["sent"] == 4  # not folded yet

    state.write_bucket(two)  # folds its entry: gone, and not applied again

    assert _journal_keys(aws, "products") == [keys[0]]
    [again] = state.read_buckets("products", [2])
    assert (again.records[key2].status, again.records[key2].attempts) == (Status.RETRY, 1)
    assert state.read_failing("products", [2])[2].items[key2].reason == "503 from the API"


def test_dynamo_state_folded_entry_left_behind_is_not_applied_twice(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = aws.state()
    state.write_bucket(bucket_with("products", 3, 6))
    h = bucket_with("products", 3, 6).records["sku-3-3"].hash
    state.record_outcomes("products", {3: {"sku-3-3": Recorded(h, False, "retry", "down")}})
    [bucket] = state.read_buckets("products", [3])
    real = state._batch_write

    def no_deletes(requests: list[dict[str, Any]]) -> None:
        if any("DeleteRequest" in r for r in requests):
            raise OSError("throttled")  # the write went through, the clean-up did not
        real(requests)

    monkeypatch.setattr(state, "_batch_write", no_deletes)
    state.write_bucket(bucket)
    monkeypatch.undo()

    assert len(_journal_keys(aws, "products")) == 1  # still there, marked folded
    [once] = state.read_buckets("products", [3])
    assert once.records["sku-3-3"].attempts == 1
    state.write_bucket(once)  # the next write deletes it
    assert _journal_keys(aws, "products") == []
    assert state.read_buckets("products", [3])[0].records["sku-3-3"].attempts == 1


def test_dynamo_state_journal_part_results_and_folded_entries_go_in_one_batch(
    aws: LocalAws,
) -> None:
    state = aws.state()
    state.write_bucket(bucket_with("products", 4, 6))
    h = bucket_with("products", 4, 6).records["sku-4-3"].hash
    state.record_outcomes("products", {4: {"sku-4-3": Recorded(h, False, "sent")}})
    [bucket] = state.read_buckets("products", [4])
    state.write_bucket(bucket, drop_folded=False)  # folded, left for the batch
    assert bucket.journal and _journal_keys(aws, "products") == bucket.journal
    parts = [
        PartResult(feed="products", run_id="r9", bucket=b, finished_at=NOW.isoformat())
        for b in range(30)
    ]

    keys = state.record_outcomes(
        "products",
        {5: {"sku-5-1": Recorded("h5", False, "failed", "bad")}},
        parts=parts,
        drop=bucket.journal,
    )

    assert _journal_keys(aws, "products") == keys  # the folded entry gone, the new one in
    assert [p.bucket for p in state.list_part_results("products", "r9")] == list(range(30))
    assert state.read_buckets("products", [4])[0].records["sku-4-3"].status is Status.SENT


def test_dynamo_state_counts_add_the_journal_s_deltas_on_the_version_stored(
    aws: LocalAws,
) -> None:
    """A journal entry's counts delta counts while the bucket version it was worked
    out on is the one stored and the entry is not folded: never twice, never on a
    bucket rewritten since (whose counts are its own)."""
    state = aws.state()
    state.write_bucket(bucket_with("products", 1, 9))  # version 1; 0, 3, 6 pending
    [view] = state.read_buckets("products", [1])
    before = view.counts()
    sent = {
        k: Recorded(view.records[k].hash, view.records[k].deleted, "sent")
        for k in ("sku-1-3", "sku-1-6")
    }
    apply_outcomes(view, sent)
    delta = CountsDelta.between(view.version, before, view.counts())
    assert delta.counts == {"pending": -2, "sent": 2}

    [key] = state.record_outcomes("products", {1: sent}, deltas={1: delta})

    counts = state.read_counts("products", [1])[1].counts
    assert counts == view.counts() and counts["pending"] == 1  # the entry's delta added
    [again] = state.read_buckets("products", [1])
    assert again.counts() == counts  # as the records, with the entry applied, say
    stale = CountsDelta(0, {"pending": -1, "sent": 1})  # worked out on an older version
    state.record_outcomes("products", {1: {"sku-1-0": sent["sku-1-3"]}}, deltas={1: stale})
    assert state.read_counts("products", [1])[1].counts == counts  # not added

    state.write_bucket(again)  # folds the entries: the stored counts hold them now
    assert state.read_counts("products", [1])[1].counts == again.counts() == counts
    assert key not in _journal_keys(aws, "products")


def test_dynamo_state_keeps_an_index_of_the_waiting_records_for_the_export(
    aws: LocalAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`read_waiting` gives a partial view of the records waiting to be sent (from
    the index written beside the bucket, journal applied) where there are few, the
    whole bucket where there are many; a partial view is never written."""
    from catalog_sync.aws import dynamodb

    state = aws.state(overflow=aws.blobs())
    few, many = bucket_with("products", 1, 30), bucket_with("products", 2, 30)
    for rec in many.records.values():
        rec.status = Status.PENDING
    monkeypatch.setattr(dynamodb, "WAITING_INDEX_CAP", 12)  # few: 10 pending; many: 30
    state.write_bucket(few)
    state.write_bucket(many)
    waiting = few.pending()
    key = next(iter(waiting))
    state.record_outcomes("products", {1: {key: Recorded(waiting[key].hash, False, "sent")}})

    partial, whole = state.read_waiting("products", [1, 2])

    assert (partial.whole, partial.total, partial.version) == (30, 30, 1)
    assert partial.part == few.part
    assert sorted(partial.records) == sorted(waiting)  # the waiting records only
    assert partial.records[key].status is Status.SENT  # the journal applied
    assert partial.pending() == {k: r for k, r in waiting.items() if k != key}
    assert partial.journal == _journal_keys(aws, "products")
    assert whole.whole is None and whole.records == many.records  # too many: all read
    with pytest.raises(CatalogSyncError, match="partial view"):
        state.write_bucket(partial)


def test_dynamo_state_reads_the_zlib_state_an_earlier_version_wrote(aws: LocalAws) -> None:
    """Buckets, indexes and journal entries written zlib-compressed (before zstd)
    read as they were; the next write of the bucket stores zstd."""
    import zlib

    from catalog_sync.infra import codec

    state = aws.state(overflow=aws.blobs())
    bucket = bucket_with("products", 4, 40)
    state.write_bucket(bucket)
    waiting = bucket.pending()
    key = next(iter(waiting))
    state.record_outcomes("products", {4: {key: Recorded(waiting[key].hash, False, "sent")}})
    table = aws.names.table
    for item in aws.dynamodb.scan(TableName=table)["Items"]:  # as the zlib version wrote it
        for name in ("data", "failing", "waiting"):
            if name in item:
                item[name] = {"B": zlib.compress(codec.unpack(item[name]["B"]), 1)}
        aws.dynamodb.put_item(TableName=table, Item=item)
    raw = get_raw(aws, "state#products#0004", "bucket")
    assert raw["data"]["B"][:4] != codec.ZSTD_MAGIC

    [back] = state.read_buckets("products", [4])
    [view] = state.read_waiting("products", [4])

    assert back.records[key].status is Status.SENT  # the zlib journal entry applied
    assert {k: r for k, r in back.records.items() if k != key} == {
        k: r for k, r in bucket.records.items() if k != key
    }
    assert sorted(view.records) == sorted(waiting)
    state.write_bucket(back)
    assert get_raw(aws, "state#products#0004", "bucket")["data"]["B"][:4] == codec.ZSTD_MAGIC
    [again] = state.read_buckets("products", [4])
    assert again.records == back.records
