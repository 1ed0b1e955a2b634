"""Pass 1's partitions kept between invocations, for a read that continues in a
follow-up invocation (`sync.readstep`): local disk does not survive an invocation,
so the partitions pass 2 has not built yet go to the snapshot bucket, once, and a
later invocation fetches each one just before it builds it.

Only this module knows how a `CsvSplit` is put back together from staged files; pass
1 itself is not touched (a read that continues never runs it again).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from catalog_sync.errors import NotFoundError
from catalog_sync.ports import BlobStore
from catalog_sync.records import ReadReport
from catalog_sync.sources.inventory import StockDef
from catalog_sync.sources.magento_csv.partitions import CsvPartition, CsvSplit
from catalog_sync.sources.magento_csv.source import MagentoCsvSource

LEVEL = 1  # zlib level: fast; CSV frames shrink several times


def partition_key(prefix: str, index: int) -> str:
    return f"{prefix}part-{index:04d}.bin.z"


def stageable(partitions: Sequence[CsvPartition]) -> bool:
    """Whether the partitions can leave this invocation: file partitions can, the
    single in-memory partition of a small file cannot (its read is short anyway)."""
    return bool(partitions) and all(p.path is not None for p in partitions)


def stage_partitions(
    blobs: BlobStore, prefix: str, partitions: Sequence[CsvPartition], start: int, workdir: Path
) -> int:
    """Copy partitions `start..` (not built yet) under `prefix`, compressed; a
    partition whose file is gone or empty (no rows fell into it) is not staged.
    Returns the objects written."""
    staged = 0
    for index in range(start, len(partitions)):
        path = partitions[index].path
        if path is None or not path.exists() or path.stat().st_size == 0:
            continue
        packer = zlib.compressobj(LEVEL)
        packed = workdir / f"part-{index:04d}.bin.z"
        with open(path, "rb") as src, open(packed, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(packer.compress(chunk))
            out.write(packer.flush())
        blobs.put_file(partition_key(prefix, index), packed)
        packed.unlink()
        staged += 1
    return staged


def fetch_partition(blobs: BlobStore, prefix: str, partition: CsvPartition, index: int) -> None:
    """Bring a staged partition's file back to where `partition` reads it (nothing
    staged: it stays absent, and reads as no records). Fetched again on a retry: the
    object stays until the run completes."""
    assert partition.path is not None
    try:
        data = blobs.get_bytes(partition_key(prefix, index))
    except NotFoundError:
        partition.path.unlink(missing_ok=True)
        return
    partition.path.write_bytes(zlib.decompress(data))


def layout(split: CsvSplit) -> tuple[list[str], list[dict[str, Any]]]:
    """The header and stock layout the partitions were cut with (to rebuild them)."""
    first = split.partitions[0]
    return list(first.header), [asdict(s) for s in first.stocks]


def staged_split(
    source: MagentoCsvSource,
    header: list[str],
    stocks: list[dict[str, Any]],
    wanted: frozenset[str] | None,
    count: int,
    warnings: int,
    workdir: Path,
) -> CsvSplit:
    """The split of a read an earlier invocation began: `count` partitions that read
    from `workdir` once fetched; the source counts this invocation's records and
    warnings into a new report (the caller adds the one carried), and goes on with
    the warnings counted so far (the first ones are listed, the rest counted)."""
    defs = tuple(
        StockDef(str(s["stock_id"]), tuple(s["sources"]), tuple(s["websites"])) for s in stocks
    )
    partitions = [
        CsvPartition(header, wanted, workdir / f"part-{i:04d}.bin", None, defs)
        for i in range(count)
    ]
    source._report = ReadReport(complete=True)
    source._warnings = warnings
    return CsvSplit([], partitions, source)


def warnings_of(source: MagentoCsvSource) -> int:
    """The warnings the source counted so far in this read."""
    return source._warnings
