"""The CPU hot path of a reindex, without AWS: read + build + encode (hash) of
every item of a catalog. `python -m bench.hotpath CATALOG.csv [--views default,fr,de]
[--feeds products]`. Prints µs per item per stage and items/s."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import BuildContext
from catalog_sync.records import Rejected
from catalog_sync.sources.magento_csv import MagentoCsvSource
from catalog_sync.sync.canonical import encode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("catalog")
    parser.add_argument("--views", default="default,fr,de")
    parser.add_argument("--feeds", default="products")
    args = parser.parse_args()
    specs = [get_feed(f) for f in args.feeds.split(",")]
    views = tuple((v, "base") for v in args.views.split(","))
    ctx = BuildContext(
        now=datetime.now(UTC), store_views=views, feeds=frozenset(args.feeds.split(","))
    )
    t_read = t_build = t_encode = 0.0
    n = 0
    it = iter(MagentoCsvSource(args.catalog).read())
    t0 = time.perf_counter()
    while True:
        a = time.perf_counter()
        try:
            record = next(it)
        except StopIteration:
            break
        b = time.perf_counter()
        t_read += b - a
        if isinstance(record, Rejected):
            continue
        for spec in specs:
            c = time.perf_counter()
            items = spec.build(record, ctx)
            d = time.perf_counter()
            for item in items:
                encode(spec, item)
                n += 1
            t_build += d - c
            t_encode += time.perf_counter() - d
    total = time.perf_counter() - t0
    print(
        f"{n:,} items: read {t_read / n * 1e6:.1f} µs/item, build {t_build / n * 1e6:.1f}, "
        f"encode {t_encode / n * 1e6:.1f}; {n / total:,.0f} items/s"
    )


if __name__ == "__main__":
    main()
