"""What the export reads and writes per bucket (issue 11): the pending items of a
bucket come from the delta parts that hold them, newest first, without reading the
full part under them; what is sent and recorded is what reading the whole content
gives (checked against a fresh full build of the same catalog)."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from catalog_sync.sync.snapshot import read_bucket_items, read_wanted_items
from tests.fakes import MemoryBlobs
from tests.unit.test_delta_parts import CATALOG, bodies, fresh, parts_of
from tests.unit.test_fingerprints import World, product


class CountingBlobs(MemoryBlobs):
    """MemoryBlobs that lists the objects opened."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []

    def open(self, key: str) -> BinaryIO:
        self.opened.append(key)
        return super().open(key)


def test_the_export_of_a_few_changes_reads_their_delta_not_the_full_part(tmp_path: Path):
    w = World(tmp_path, fingerprints=True)
    w.blobs = CountingBlobs()
    w.sync(CATALOG)
    rows = [*CATALOG[:7], product("SKU-07", "Renamed"), *CATALOG[8:]]
    w.blobs.opened.clear()

    w.sync(rows)

    (part,) = [p for p in parts_of(w).values() if p is not None and p.deltas]
    assert w.sent() == ["SKU-07\x1fdefault", "SKU-07\x1ffr"]
    # the diff wrote the delta (it reads nothing: every live item was read); the export
    # opened only the delta, not the full part under it
    assert w.blobs.opened == [part.deltas[-1].key]
    assert bodies(w) == bodies(fresh(tmp_path, rows, "fresh"))


def test_wanted_items_are_what_the_whole_content_gives(tmp_path: Path):
    w = World(tmp_path, fingerprints=True)
    w.sync(CATALOG)
    rows = list(CATALOG)
    for run in range(3):  # SKU-00 in three deltas, SKU-01 removed in the last
        rows[0] = product("SKU-00", f"Name {run}")
        if run == 2:
            rows = [r for r in rows if r["sku"] != "SKU-01"]
        w.sync(rows)
    for part in parts_of(w).values():
        if part is None:
            continue
        whole = {k: (h, b) for k, h, b in read_bucket_items(w.blobs, part)}
        every = {k: h for k, (h, _) in whole.items()}
        wanted = {**every, "SKU-01\x1fdefault": "gone", "SKU-00\x1ffr": "stale"}
        got = {k: (h, b) for k, h, b in read_wanted_items(w.blobs, part, wanted)}
        expect = {k: v for k, v in whole.items() if wanted[k] == v[0]}
        assert got == expect
