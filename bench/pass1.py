"""The CSV read's pass 1, measured (docs/operations.md, "Limits"): what bounds a read
that continues across invocations. `python -m bench.pass1 20000` generates a
synthetic catalog (devstack.synth), runs pass 1 (`MagentoCsvSource.split`: the file
framed into partition files) and reports its rate in MB of CSV per second and the
partition files' size on disk against the CSV's. Pass 1 is one step of one
invocation (a read checkpoints after it), so its rate times the invocation budget is
the largest file a continued read can take. The last line is JSON."""

from __future__ import annotations

import json
import sys
import tempfile
import time
import zlib
from pathlib import Path

from devstack import synth


def main() -> None:
    from catalog_sync.sources.magento_csv import MagentoCsvSource

    products = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "catalog.csv"
        synth.generate(catalog, products, seed=1)
        size = catalog.stat().st_size
        work = Path(tmp) / "work"
        work.mkdir()
        source = MagentoCsvSource(str(catalog), workdir=work, store_views=None)
        started = time.perf_counter()
        with source.split() as split:
            seconds = time.perf_counter() - started
            parts = sum(p.path.stat().st_size for p in split.partitions if p.path)
            count = len(split.partitions)
            started = time.perf_counter()
            packed = 0
            for p in split.partitions:  # what a hand-on's staging compresses (level 1)
                if p.path is not None:
                    packed += len(zlib.compress(p.path.read_bytes(), 1))
            pack_seconds = time.perf_counter() - started
        rate = size / seconds / 1e6
        out = {
            "products": products,
            "csv_mb": round(size / 1e6, 1),
            "pass1_seconds": round(seconds, 2),
            "pass1_mb_per_s": round(rate, 1),
            "partitions": count,
            "partition_bytes_per_csv_byte": round(parts / size, 2),
            "csv_gb_in_780s": round(rate * 780 / 1e3, 1),
            "stage_compress_mb_per_s": round(parts / pack_seconds / 1e6, 1),
            "staged_bytes_per_csv_byte": round(packed / size, 2),
        }
        print(
            f"pass 1: {out['csv_mb']} MB in {out['pass1_seconds']} s = {out['pass1_mb_per_s']} "
            f"MB/s; {count} partitions, {out['partition_bytes_per_csv_byte']} bytes on disk "
            f"per CSV byte; 780 s read {out['csv_gb_in_780s']} GB of CSV; staging compresses "
            f"{out['stage_compress_mb_per_s']} MB/s to {out['staged_bytes_per_csv_byte']} "
            "bytes per CSV byte"
        )
        print(json.dumps(out))


if __name__ == "__main__":
    main()
