"""Compare the two sources on one catalog: `python -m bench.compare_sources CATALOG.csv`.

Reads the export CSV directly, and the same catalog through the local Magento REST
API server, builds the items of every feed from both, and reports per feed how many
items each side has and how many differ (with the first differences)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from catalog_sync.feeds.registry import all_feeds, get_feed
from catalog_sync.feeds.spec import BuildContext
from catalog_sync.records import Rejected
from catalog_sync.sources.magento_csv import MagentoCsvSource
from catalog_sync.sources.magento_rest import MagentoRestSource
from catalog_sync.sync.canonical import encode
from devstack.magento_server import MagentoApiServer

TOKEN = "compare-token"


def items(source: Any, ctx: BuildContext) -> tuple[dict[str, dict[str, str]], int]:
    out: dict[str, dict[str, str]] = {f: {} for f in ctx.feeds}
    aggregates: dict[str, dict[str, Any]] = {f: {} for f in ctx.feeds}
    rejected = 0
    for record in source.read():
        if isinstance(record, Rejected):
            rejected += 1
            continue
        for feed in ctx.feeds:
            spec = get_feed(feed)
            for item in spec.build(record, ctx):
                if spec.merge is not None:
                    data = (
                        item.model_dump(mode="json", by_alias=True)
                        if hasattr(item, "model_dump")
                        else item
                    )
                    key = spec.key_of(data)
                    seen = aggregates[feed].get(key)
                    aggregates[feed][key] = data if seen is None else spec.merge(seen, data)
                else:
                    enc = encode(spec, item)
                    out[feed][enc.key] = enc.hash
    for feed, agg in aggregates.items():
        for data in agg.values():
            enc = encode(get_feed(feed), data)
            out[feed][enc.key] = enc.hash
    return out, rejected


def main() -> None:
    path = sys.argv[1]
    ctx = BuildContext(now=datetime.now(UTC), feeds=frozenset(all_feeds()))
    csv_items, csv_rejected = items(MagentoCsvSource(path), ctx)
    with MagentoApiServer(path, token=TOKEN) as server:
        rest_items, rest_rejected = items(MagentoRestSource(server.url, lambda: TOKEN), ctx)
    report: dict[str, Any] = {"rejected": {"csv": csv_rejected, "rest": rest_rejected}}
    for feed in sorted(ctx.feeds):
        a, b = csv_items[feed], rest_items[feed]
        differ = sorted(k for k in a.keys() & b.keys() if a[k] != b[k])
        report[feed] = {
            "csv": len(a),
            "rest": len(b),
            "only_csv": sorted(a.keys() - b.keys())[:5],
            "only_rest": sorted(b.keys() - a.keys())[:5],
            "differ": len(differ),
            "differ_first": [k.replace("\x1f", " / ") for k in differ[:5]],
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
