"""The export CSV's read alone, pass by pass, against a bare `csv.reader` parse of
the same file: `python -m bench.read CATALOG.csv [MORE.csv ...] [--workers 2]`.

Per file: the bare parse; pass 1 serial and in byte ranges (`ranges.py`); pass 2
(group, fingerprint, build) of every partition for a full build, an unchanged
sync (every fingerprint known) and a 1% sync (1 in 100 unknown), serially and in
worker processes. Wall seconds, CPU seconds (this process and its workers) and
each as a ratio to the bare parse; the peak RSS of this process and of the
largest worker (all processes together is at most parent + workers x largest).
Read-only: nothing is synced, the partition files go to a temporary folder.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import resource
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    from catalog_sync.infra.calls import call_in_workers
except ImportError:  # an older tree (for a before/after run): no worker pass 2 here
    call_in_workers = None  # type: ignore[assignment]
from catalog_sync.sources.magento_csv import CsvPartition, MagentoCsvSource
from catalog_sync.sources.magento_csv.partitions import record_fingerprint


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@contextmanager
def _timed(label: str, rows: list[tuple[str, float, float]]) -> Iterator[None]:
    wall, cpu = time.perf_counter(), _cpu()
    yield
    rows.append((label, time.perf_counter() - wall, _cpu() - cpu))


def _bare(path: Path) -> int:
    n = 0
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
        for _ in csv.reader(f):
            n += 1
    return n


def _keep(fingerprints: set[int], every: int) -> Callable[[int], float | None]:
    """A skip function knowing every fingerprint but 1 in `every` (0: all known)."""
    if every == 0:
        return lambda fp: 1e18 if fp in fingerprints else None
    return lambda fp: None if fp % every == 0 or fp not in fingerprints else 1e18


def build(parts: list[CsvPartition], fingerprints: set[int] | None, every: int) -> int:
    """Pass 2 of `parts` (a worker's share); the records built or skipped."""
    n = 0
    warn: Callable[[Any], None] = lambda issue: None  # noqa: E731
    for part in parts:
        if fingerprints is None:
            n += sum(1 for _ in part.records(warn))
        else:
            n += sum(1 for _ in part.records(warn, _keep(fingerprints, every)))
    return n


def _fingerprints(parts: list[CsvPartition]) -> set[int]:
    """Every record's fingerprint (reading the partition files leaves them in place)."""
    from catalog_sync.sources.magento_csv.partitions import _file_groups

    found: set[int] = set()
    for part in parts:
        assert part.path is not None
        for key, frames in _file_groups(part.path):
            found.add(record_fingerprint(key, frames))
    return found


def _pass2(split: Any, label: str, rows: list[tuple[str, float, float]], workers: int) -> None:
    parts = split.partitions
    paths = [p.path for p in parts]
    for path in paths:  # pass 2 removes what it read: a copy on disk puts it back
        shutil.copyfile(path, f"{path}.keep")

    def restore() -> None:
        for path in paths:
            shutil.copyfile(f"{path}.keep", path)

    from bench import read as read_module  # by its module's name, not __main__

    known = _fingerprints(parts)
    restore()
    for name, prints, every in (
        ("full build", None, 0),
        ("unchanged", known, 0),
        ("1% changed", known, 100),
    ):
        with _timed(f"{label} pass 2 {name}, serial", rows):
            build(parts, prints, every)
        restore()
        if call_in_workers is None:
            continue
        with _timed(f"{label} pass 2 {name}, {workers} workers", rows):
            call_in_workers(
                read_module.build, [(parts[i::workers], prints, every) for i in range(workers)]
            )
        restore()


def bench_file(path: Path, workers: int) -> list[tuple[str, float, float]]:
    rows: list[tuple[str, float, float]] = []
    label = f"{path.stat().st_size / 1e6:.0f} MB"
    with _timed(f"{label} bare csv.reader", rows):
        _bare(path)
    ranged = "workers" in inspect.signature(MagentoCsvSource).parameters
    for w in (1, workers) if ranged else (1,):
        source = MagentoCsvSource(str(path), **({"workers": w} if ranged else {}))
        wall, cpu = time.perf_counter(), _cpu()
        with source.split() as split:
            rows.append(
                (f"{label} pass 1, {getattr(source, 'ranges', 1)} range(s)",
                 time.perf_counter() - wall,
                 _cpu() - cpu)
            )  # fmt: skip
            if w == 1:
                _pass2(split, label, rows, workers)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("catalogs", nargs="+", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    for path in args.catalogs:
        rows = bench_file(path, args.workers)
        _, bare_wall, bare_cpu = rows[0]
        for label, wall, cpu in rows:
            print(
                f"{label:<48} {wall:7.2f} s wall ({wall / bare_wall:5.2f}x bare)  "
                f"{cpu:7.2f} s cpu ({cpu / bare_cpu:5.2f}x)"
            )
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kid = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: this process {me:.0f} MB, largest worker {kid:.0f} MB")


if __name__ == "__main__":
    main()
