"""The limits of one reindex invocation, measured (docs/operations.md, "Limits"):
`python -m bench.limits 100000` generates a synthetic catalog (devstack.synth), runs
a full resync on the local stack and reports the reindex time, the export time, the
peak `/tmp` use of the run (the spill files under WORK_DIR, sampled every 50 ms) and
the per-100k-items figures. The last line is JSON."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

from devstack import synth
from devstack.local import LocalRunner, LocalStack
from devstack.localaws import ResourceNames

STORE_VIEWS = "default:base,fr:base,de:base"


def _tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):  # a spill file removed while we looked
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def main() -> None:
    products = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "catalog.csv"
        work = Path(tmp) / "work"
        work.mkdir()
        stats = synth.generate(catalog, products, seed=1, store_views=("fr", "de"))
        with LocalStack(names=ResourceNames.unique(), source=str(catalog)) as stack:
            env = {**stack.env, "STORE_VIEWS": STORE_VIEWS, "WORK_DIR": str(work)}
            runner = LocalRunner(env)
            peak = {"bytes": 0}
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.05):
                    peak["bytes"] = max(peak["bytes"], _tree_bytes(work))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t = time.perf_counter()
            result = runner.reindex({"action": "resync", "feed": "products"})
            reindex_s = time.perf_counter() - t
            stop.set()
            sampler.join()
            t = time.perf_counter()
            runner.drain()
            export_s = time.perf_counter() - t
    items = result["runs"][0]["counts"].get("items_read", 0) or 1
    per_100k = 100_000 / items
    out = {
        "products": products,
        "rows": stats.rows,
        "csv_mb": round(stats.bytes / 1e6, 1),
        "items": items,
        "reindex_s": round(reindex_s, 1),
        "export_s": round(export_s, 1),
        "tmp_peak_mb": round(peak["bytes"] / 1e6, 1),
        "reindex_s_per_100k_items": round(reindex_s * per_100k, 1),
        "tmp_mb_per_100k_items": round(peak["bytes"] / 1e6 * per_100k, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
