"""Delta snapshot parts: a run that changes a few items of a bucket writes a part
with just those on the bucket's content; the deltas are compacted into a full part
when they pile up; the content read through them is always what a fresh full build
of the same catalog holds."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from catalog_sync.sync.snapshot import (
    MAX_DELTAS,
    MIN_DELTAS,
    delta_limit,
    part_key,
    read_bucket_items,
)
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


def test_each_full_part_has_its_own_delta_limit_so_buckets_compact_in_different_runs():
    """Given the 64 buckets of a feed whose full parts one run wrote (a resync), each
    changing a little every run; when each compacts at its part's `delta_limit`, then
    the limits lie between MIN_DELTAS and MAX_DELTAS and are the same for the same key,
    and over 100 runs no run compacts more than a quarter of the buckets (one limit
    for all compacted all 64 in the same run), while they compact about as often as a
    limit of 9 for all would have them do."""
    keys = [part_key("products", "run-0000", b) for b in range(64)]
    limits = [delta_limit(k) for k in keys]
    assert all(MIN_DELTAS <= n <= MAX_DELTAS for n in limits)
    assert limits == [delta_limit(k) for k in keys]  # a function of the key alone
    assert len(set(limits)) >= 5

    base = dict(enumerate(keys))
    deltas = dict.fromkeys(range(64), 0)
    per_run: Counter[int] = Counter()
    for run in range(1, 101):
        for b in range(64):
            if deltas[b] >= delta_limit(base[b]):
                base[b] = part_key("products", f"run-{run:04d}", b)  # compacted
                deltas[b] = 0
                per_run[run] += 1
            else:
                deltas[b] += 1
    assert max(per_run.values()) <= 16
    assert 64 * 100 / 11 <= sum(per_run.values()) <= 64 * 100 / 9
