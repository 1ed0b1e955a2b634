"""Benchmark: read a whole synthetic catalog through MagentoRestSource from the local server.

    .venv/bin/python bench/rest_read.py --products 10000 [--page-size 100] [--concurrency 4]

Generates a catalog with `devstack.synth.generate`, serves it with
`python -m devstack.magento_server` in a child process (so the reader's memory is
measured alone), reads it all and prints one JSON object: products/s and the reader's
peak RSS (and the RSS before the read, to show how much the read itself took).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from catalog_sync.catalog import CatalogProduct
from catalog_sync.sources.magento_rest import MagentoRestSource
from devstack.synth import generate

TOKEN = "bench-token"


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rest-bench-") as tmp:
        csv_path = Path(tmp) / "catalog.csv"
        generate(csv_path, args.products, seed=args.seed)
        started = time.perf_counter()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devstack.magento_server",
                str(csv_path),
                "--port",
                "0",
                "--token",
                TOKEN,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            info = json.loads(server.stdout.readline())
            load_s = time.perf_counter() - started
            rss_before = _rss_mb()
            source = MagentoRestSource(
                info["url"],
                lambda: TOKEN,
                page_size=args.page_size,
                concurrency=args.concurrency,
            )
            t0 = time.perf_counter()
            products = rejected = 0
            for entry in source.read():
                if isinstance(entry, CatalogProduct):
                    products += 1
                else:
                    rejected += 1
            elapsed = time.perf_counter() - t0
        finally:
            server.terminate()
            server.wait(timeout=30)
    report = source.report()
    print(
        json.dumps(
            {
                "products": products,
                "rejected": rejected,
                "complete": report.complete,
                "page_size": args.page_size,
                "concurrency": args.concurrency,
                "server_load_s": round(load_s, 1),
                "read_s": round(elapsed, 1),
                "products_per_s": round(products / elapsed, 1) if elapsed else None,
                "rss_before_read_mb": round(rss_before, 1),
                "peak_rss_mb": round(_peak_mb(), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
