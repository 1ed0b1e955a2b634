"""Delta snapshot parts: a run that changes a few items of a bucket writes a part
with just those on the bucket's content; the deltas are compacted into a full part
when they pile up; the content read through them is always what a fresh full build
of the same catalog holds."""

from __future__ import annotations

from pathlib import Path

from catalog_sync.sync.snapshot import MAX_DELTAS, read_bucket_items
from tests.unit.test_fingerprints import World, product

CATALOG = [product(f"SKU-{i:02d}") for i in range(40)]


def bodies(w: World) -> dict[str, bytes]:
    return {k: v for k, v in w.content().items() if k.startswith("body ")}


def fresh(tmp_path: Path, rows: list[dict], name: str) -> World:
    (tmp_path / name).mkdir()
    w = World(tmp_path / name, fingerprints=True)
    w.sync(rows)
    return w


def parts_of(w: World) -> dict[int, object]:
    return {b.bucket: b.part for b in w.state.read_buckets("products", range(4))}


def test_a_few_changed_items_go_in_a_delta_part(tmp_path):
    w = World(tmp_path, fingerprints=True)
    w.sync(CATALOG)
    before = parts_of(w)
    rows = [*CATALOG[:7], product("SKU-07", "Renamed"), *CATALOG[8:]]

    counts = w.sync(rows)

    after = parts_of(w)
    changed = [b for b in after if after[b] != before[b]]
    assert len(changed) == 1 and counts["deltas_written"] == 1 and counts["parts_reused"] == 3
    part = after[changed[0]]
    assert part.key == before[changed[0]].key and len(part.deltas) == 1
    assert part.deltas[0].items == 2 and part.deltas[0].bytes < part.bytes / 2
    assert w.sent() == ["SKU-07\x1fdefault", "SKU-07\x1ffr"]
    assert bodies(w) == bodies(fresh(tmp_path, rows, "fresh"))


def test_deltas_are_compacted_when_they_pile_up(tmp_path):
    w = World(tmp_path, fingerprints=True)
    w.sync(CATALOG)
    rows = list(CATALOG)
    depths = []
    for run in range(MAX_DELTAS + 2):  # one product of one bucket changes each run
        rows[0] = product("SKU-00", f"Name {run}")
        w.sync(rows)
        depths.append(max(len(p.deltas) for p in parts_of(w).values() if p))
        assert bodies(w) == bodies(fresh(tmp_path, rows, f"fresh-{run}"))
        assert w.sent() == ["SKU-00\x1fdefault", "SKU-00\x1ffr"]
    assert max(depths) >= 2  # a key in two deltas: the newest line wins
    assert max(depths) <= MAX_DELTAS and 0 in depths[1:]  # a full part again
    live = {k for p in parts_of(w).values() if p for k in p.objects()}
    assert live <= set(w.blobs.objects)


def test_a_deletion_writes_a_delta_of_removal_lines(tmp_path):
    w = World(tmp_path, fingerprints=True)
    w.sync(CATALOG)
    before = parts_of(w)

    counts = w.sync([r for r in CATALOG if r["sku"] != "SKU-05"])

    assert counts["deleted"] == 2 and counts["deltas_written"] == 1
    after = parts_of(w)
    (bucket,) = [b for b in after if after[b] != before[b]]
    assert after[bucket].deltas[0].items == 2
    keys = {k for k, _, _ in read_bucket_items(w.blobs, after[bucket])}  # without the state
    assert keys and not keys & {"SKU-05\x1fdefault", "SKU-05\x1ffr"}
    assert w.sent() == ["SKU-05\x1fdefault", "SKU-05\x1ffr"]
    assert bodies(w) == bodies(fresh(tmp_path, [r for r in CATALOG if r["sku"] != "SKU-05"], "f"))
