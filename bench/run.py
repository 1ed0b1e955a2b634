"""`make bench`: full resync, 1%-changed incremental sync and an unchanged sync on
the local stack, at 10k and 100k products (synthetic catalogs, 3 store views).

Each scenario runs in its own process (peak RSS is per scenario); the local stack
(moto server + feed receiver) runs in another process, as `catalogctl local up`.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from devstack import demo, synth

WORK = Path(".bench")
STORE_VIEWS = "default:base,fr:base,de:base"


def scenario(env: dict[str, str], event: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.scenario", json.dumps(event)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"bench: scenario {event} failed")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def bench_size(products: int, seed: int) -> dict[str, Any]:
    WORK.mkdir(exist_ok=True)
    catalog = WORK / f"catalog-{products}.csv"
    t = time.perf_counter()
    stats = synth.generate(catalog, products, seed=seed, store_views=("fr", "de"))
    gen_s = time.perf_counter() - t
    edited = WORK / f"catalog-{products}-1pct.csv"
    change = synth.edit_fraction(catalog, edited, 0.01, seed=seed + 1)
    proc, env = demo.start_stack(show=False)
    env["STORE_VIEWS"] = STORE_VIEWS
    env["CATALOG_SOURCE"] = str(catalog.resolve())
    try:
        out: dict[str, Any] = {
            "products": products,
            "rows": stats.rows,
            "csv_mb": round(stats.bytes / 1e6, 1),
            "generate_s": round(gen_s, 2),
            "changed_products": len(change.changed),
        }
        out["full_resync"] = scenario(env, {"action": "resync", "feed": "products"})
        out["incremental_1pct"] = scenario(env, {"action": "sync", "source": str(edited.resolve())})
        out["unchanged"] = scenario(env, {"action": "sync", "source": str(edited.resolve())})
        return out
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        r = bench_size(size, args.seed)
        results.append(r)
        for name in ("full_resync", "incremental_1pct", "unchanged"):
            s = r[name]
            print(
                f"{size:>7,} products {name:<17} items {s['items']:>8,} sent {s['items_sent']:>8,} "
                f"read+build+hash {s['read_items_per_s'] or 0:>7,}/s  diff+snapshot {s['diff_items_per_s'] or 0:>8,}/s  "
                f"export {s['export_items_per_s'] or 0:>7,}/s  wall {s['wall_s']:>7.1f}s  "
                f"peak RSS {s['peak_rss_mb']:>6.1f} MB (workers {s['worker_peak_rss_mb']:>5.1f} MB each)",
                flush=True,
            )
    print(json.dumps({"store_views": STORE_VIEWS, "results": results}))


if __name__ == "__main__":
    main()
