"""The invocation budget of a run (issue 10): where it comes from, and that an
invocation always makes progress before it hands the run on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from catalog_sync.app import run_budget
from catalog_sync.settings import Settings
from catalog_sync.sync.continuation import Budget

BASE = {
    "SNAPSHOT_BUCKET": "b",
    "STATE_TABLE": "t",
    "EXPORT_QUEUE_URL": "q",
    "SAAS_BASE_URL": "https://x",
    "SAAS_ENVIRONMENT_ID": "e",
    "SAAS_API_KEY_SECRET_ID": "s",
}


def test_budget_setting_and_context() -> None:
    plain = Settings.from_env(BASE)
    assert run_budget(plain, None) is None  # no context, no setting: no limit
    assert run_budget(plain, 900) == 780  # the context's time less the 120 s margin
    assert run_budget(plain, 60) == 0  # less than the margin: hand on at once
    forced = Settings.from_env({**BASE, "RUN_TIME_BUDGET_SECONDS": "30"})
    assert run_budget(forced, None) == 30
    assert run_budget(forced, 900) == 30
    assert run_budget(forced, 100) == 0  # never past what the context leaves
    # a scheduled resend (no source read) goes on until the context's time runs low
    assert run_budget(forced, 900, resend=True) == 780
    assert run_budget(forced, None, resend=True) is None
    margin = Settings.from_env({**BASE, "RUN_TIME_MARGIN_SECONDS": "300"})
    assert run_budget(margin, 900) == 600


class Ticking:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_budget_is_spent_only_after_progress_and_time() -> None:
    clock = Ticking()
    budget = Budget(clock, 10)
    clock.now += timedelta(seconds=11)
    assert not budget.spent()  # nothing done yet in this invocation: go on
    assert budget.stop_after_chunk(4)  # a chunk was diffed and the time is up
    assert not Budget(clock, None).stop_after_chunk(4)  # no budget: never
    fresh = Budget(clock, 10)
    fresh.progress()
    assert not fresh.spent()
    clock.now += timedelta(seconds=10)
    assert fresh.spent()


def test_staged_buckets_read_as_the_spill_did(aws_clients, tmp_path) -> None:
    """A bucket spilled in segments (the reindex and two worker processes) is staged as
    one object and reads back with the same items, kept groups and duplicates; a
    bucket with nothing spilled reads empty."""
    from catalog_sync.infra.spill import BucketSpill
    from catalog_sync.sync.canonical import EncodedItem
    from catalog_sync.sync.continuation import StagedSpill, stage_spill

    blobs = aws_clients().blobs()
    spill = BucketSpill(tmp_path, 4)
    workers = [BucketSpill(tmp_path, 4, f".w{n}") for n in range(2)]
    spill.add(1, EncodedItem("a", "", "h1", b'{"a":1}'))
    workers[0].add(1, EncodedItem("b", "", "h2", b'{"b":2}'))
    workers[1].add(1, EncodedItem("a", "", "h3", b'{"a":3}'))  # a duplicate key
    workers[1].keep(1, "Rejected-SKU")
    workers[0].same(1, "Unchanged-SKU")  # a record not built (its fingerprint was known)
    workers[1].same_many([(1, "Many-A"), (3, "Many-B")])  # many, a frame per bucket
    workers[0].add(3, EncodedItem("c", "", "h4", b"{}"))
    for n, w in enumerate(workers):
        w.finish()
        spill.adopt(f".w{n}", w.items)
    spill.finish()

    assert stage_spill(blobs, spill, "run-1", "products", 0, tmp_path) == [1, 3]
    (tmp_path / "staged").mkdir()
    staged = StagedSpill(tmp_path / "staged", 4, blobs, "run-1", "products", spill.items)
    for bucket in range(4):
        assert staged.read(bucket) == spill.read(bucket), bucket
    items, keep, same, duplicates = StagedSpill(
        tmp_path / "staged", 4, blobs, "run-1", "products", 0
    ).read(1)
    assert set(items) == {"a", "b"} and items["a"].hash == "h3"  # the last one wins
    assert keep == {"rejected-sku"} and same == {"unchanged-sku", "many-a"}
    assert duplicates == ["a"]
    assert staged.items == 4


def test_sealed_worker_segments_survive_the_next_chunk(tmp_path) -> None:
    """A CSV read compiled in chunks (one partition per worker, `sync.readstep`):
    each chunk's workers write under the same segment names, so a chunk's segments
    are moved aside first; the bucket then reads every chunk's items."""
    from catalog_sync.infra.spill import BucketSpill
    from catalog_sync.sync.canonical import EncodedItem

    spill = BucketSpill(tmp_path, 2)
    for chunk, key in enumerate(("a", "b")):
        worker = BucketSpill(tmp_path, 2, ".w0")  # the same name in every chunk
        worker.add(1, EncodedItem(key, "", f"h{key}", b"{}"))
        worker.finish()
        spill.adopt(".w0", worker.items)
        spill.seal(f"c{chunk}")
    spill.finish()

    items, _, _, duplicates = spill.read(1)
    assert sorted(items) == ["a", "b"] and duplicates == []
    assert spill.items == 2


def test_a_continued_read_report_adds_up_and_lists_an_issue_once() -> None:
    from catalog_sync.records import ReadReport, SourceIssue
    from catalog_sync.sync.continuation import ReadCarry
    from catalog_sync.sync.readstep import merged

    repeated = SourceIssue("store view 'de' is inactive", field="store_view", severity="warning")
    carried = ReadCarry(
        source="rest", rows=30, records=29, issues=[repeated.to_dict()], store_views=["default"]
    )
    failed = SourceIssue("products: page 2 could not be read")
    part = ReadReport(
        complete=False,
        rows=20,
        records=20,
        issues=[repeated, failed],
        store_views=["default", "de"],
    )
    whole = merged(carried, part)
    assert (whole.complete, whole.rows, whole.records) == (False, 50, 49)
    assert whole.issues == [repeated, failed]
    assert whole.store_views == ["default", "de"]
