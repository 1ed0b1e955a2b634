"""The reindex's spill (`infra.spill`): what a bucket's files read back as."""

from __future__ import annotations

from pathlib import Path

from catalog_sync.infra.spill import BucketSpill
from catalog_sync.sync.canonical import EncodedItem


def test_records_not_built_marked_in_batches_read_back_per_bucket_lower_cased(
    tmp_path: Path,
) -> None:
    """Given marks of records not built, one at a time and a batch at a time (one
    frame per bucket), between items and kept groups, in two segments; when each
    bucket is read, then it has exactly its own marks, lower-cased, as a mark made
    one at a time reads, and its items and kept groups as they were spilled."""
    spill = BucketSpill(tmp_path, 3)
    worker = BucketSpill(tmp_path, 3, ".w0")
    spill.add(0, EncodedItem("x", "", "h1", b'{"x":1}'))
    spill.same(0, "One")
    worker.same_many([(0, "Two-A"), (1, "Three"), (0, "FÜNF"), (2, "sku\udcff")])
    worker.keep(1, "Kept")
    worker.add(0, EncodedItem("y", "", "h2", b'{"y":2}'))
    worker.same_many([(1, "Six")])
    worker.finish()
    spill.adopt(".w0", worker.items)
    spill.finish()

    items, keep, same, duplicates = spill.read(0)
    assert {k: (v.hash, v.body) for k, v in items.items()} == {
        "x": ("h1", b'{"x":1}'),
        "y": ("h2", b'{"y":2}'),
    }
    assert same == {"one", "two-a", "fünf"} and keep == set() and duplicates == []
    assert spill.read(1)[1:3] == ({"kept"}, {"three", "six"})
    assert spill.read(2)[2] == {"sku\udcff"}  # a SKU that is not UTF-8, as read
    assert not list(tmp_path.iterdir())  # read and consumed


def test_a_mark_made_one_at_a_time_and_in_a_batch_read_the_same(tmp_path: Path) -> None:
    groups = ["Ab-1", "ÉCLAIR", "x\udce9", "plain"]
    single = BucketSpill(tmp_path / "single", 1)
    batch = BucketSpill(tmp_path / "batch", 1)
    for path in (tmp_path / "single", tmp_path / "batch"):
        path.mkdir()
    for g in groups:
        single.same(0, g)
    batch.same_many([(0, g) for g in groups])
    single.finish()
    batch.finish()
    assert single.read(0) == batch.read(0)
