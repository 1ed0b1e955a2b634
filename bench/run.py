"""`make bench`: full resync, the hourly sync of issue #11's change (1% of the products
changed, 0.2% removed, 0.2% added), an unchanged sync (the same bytes: the
unchanged-source shortcut) and the same records in other bytes (the per-record path,
every fingerprint known) on the local stack, at 10k and 100k products (synthetic
catalogs, 3 store views: `--store-views`); `make bench-large`: the same at 500k
products in one store view (the issue's catalog: 500k items).

Peak RSS: this scenario's process (`ru_maxrss`), the largest worker's own (VmHWM), and
all of them together: the largest sum of their resident sets at one instant, sampled
from /proc every 50 ms (`bench.scenario.RssSampler`).

CPU: what the whole machine spent busy over each run (all processes: the scenario,
its workers, the moto server and the receiver; `/proc/stat`, so the machine should be
idle otherwise), and that over the cores as the floor of the run's wall: a run can only
get faster than its floor by spending less CPU.

Side by side in the same run: the naive baseline (rebuild and send everything every
hour: a full resync of the edited catalog) and the bare parse (`csv.reader` over the
same file, one core, nothing else) as the floor; each run is printed with its ratio
to both.

Then a series of hourly syncs in a row (`--series`, 12 by default; 0 skips it), each the
reverse of the one before (the edited file, then the original, ...: each a 1% change),
as a store's hourly runs go: the first 1%-changed sync above is the first after the
resync, with no delta snapshot parts to compact yet, and the series shows the syncs
that do compact them (`snapshot.delta_limit`). It prints each sync's wall and the full
parts it wrote, and their largest and mean walls.

Each scenario runs in its own process (peak RSS is per scenario); the local stack
(moto server + feed receiver) runs in another process, as `catalogctl local up`.
Each size prints one JSON line when it is done; the last line printed is one JSON
object with every figure.

The ACO target (`--aco-products`, default 10,000; 0 skips it), against the local ACO
emulator (`catalogctl local up --target aco`): the first sync of every entity with
pacing off (items/s exported), the 1%-changed sync (requests per 1,000 changed
items, counted at the emulator), and how long an initial load of 100k products
takes under the base license (1,000 product upserts a minute, 2 requests a second):
computed from the requests and product upserts the first sync made (scaled to 100k)
and the request rate the pacer was measured to allow, not waited for.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.aco import bench_aco, print_aco
from devstack import demo, synth

WORK = Path(".bench")
STORE_VIEWS = "default:base,fr:base,de:base"
# `make bench-large`: the catalog (#11), one store view: 500k products, 500k items
ONE_STORE_VIEW = "default:base"
# The runs of one size, in the order they run (the naive baseline last: it resends all).
# unchanged: the same bytes again (the unchanged-source shortcut, sync/unchanged.py);
# unchanged_per_record: the same records in other bytes (a blank line appended): the
# per-record path with every record's fingerprint known.
RUNS = (
    "full_resync",
    "incremental_1pct",
    "unchanged",
    "unchanged_per_record",
    "naive_hourly",
)


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


def bare_parse_s(path: Path) -> float:
    """`csv.reader` over the whole file: the floor of any run that reads it."""
    csv.field_size_limit(1 << 30)
    t = time.perf_counter()
    with open(path, encoding="utf-8", newline="") as f:
        for _row in csv.reader(f):
            pass
    return time.perf_counter() - t


SERIES = 12  # hourly syncs in a row after the runs above


def hourly_series(
    env: dict[str, str], sources: tuple[Path, Path], syncs: int, naive: float
) -> dict[str, Any]:
    """`syncs` 1%-changed syncs in a row, alternating between the two files."""
    runs = []
    for i in range(syncs):
        source = sources[i % 2]
        runs.append(scenario(env, {"action": "sync", "source": str(source.resolve())}))
    walls = [r["wall_s"] for r in runs]
    return {
        "syncs": syncs,
        "wall_s": walls,
        "full_parts_written": [r["full_parts_written"] for r in runs],
        "items_sent": [r["items_sent"] for r in runs],
        "requests": [r["requests"] for r in runs],
        "max_wall_s": max(walls),
        "mean_wall_s": round(sum(walls) / len(walls), 3),
        "max_x_naive": round(max(walls) / naive, 3) if naive else None,
        "peak_rss_all_mb": max(r["peak_rss_all_mb"] for r in runs),
    }


def bench_size(products: int, seed: int, store_views: str, series: int = SERIES) -> dict[str, Any]:
    WORK.mkdir(exist_ok=True)
    t = time.perf_counter()
    extra = tuple(v.split(":")[0] for v in store_views.split(",")[1:])  # beside default
    name = f"catalog-{products}" + ("" if extra == ("fr", "de") else f"-{len(extra) + 1}sv")
    catalog = WORK / f"{name}.csv"
    stats = synth.generate(catalog, products, seed=seed, store_views=extra)
    gen_s = time.perf_counter() - t
    edited = WORK / f"{name}-1pct.csv"
    # the hourly change (#11): 1% of the products changed, 0.2% removed, 0.2% added
    change = synth.edit(
        catalog, edited, change_prices=max(1, products // 100), remove=products // 500,
        add=products // 500, seed=seed + 1,
    )  # fmt: skip
    parse_s = bare_parse_s(edited)
    touched = WORK / f"{name}-1pct-touched.csv"
    shutil.copyfile(edited, touched)  # not through memory: the scenarios inherit our peak RSS
    with touched.open("ab") as f:
        f.write(b"\n")
    proc, env = demo.start_stack(show=False)
    env["STORE_VIEWS"] = store_views
    # one export consumer unless LOCAL_EXPORT_CONCURRENCY says more (a deployed stack
    # runs up to ExportConcurrency at once): two halve a resync's export on this
    # machine, and add about 200 MB to the memory of all processes together
    env["LOCAL_EXPORT_CONCURRENCY"] = os.environ.get("LOCAL_EXPORT_CONCURRENCY", "1")
    env["CATALOG_SOURCE"] = str(catalog.resolve())
    source = str(edited.resolve())
    events = {
        "full_resync": {"action": "resync", "feed": "products"},
        "incremental_1pct": {"action": "sync", "source": source},
        "unchanged": {"action": "sync", "source": source},
        "unchanged_per_record": {"action": "sync", "source": str(touched.resolve())},
        "naive_hourly": {"action": "resync", "feed": "products", "source": source},
    }
    try:
        out: dict[str, Any] = {
            "products": products,
            "store_views": store_views,
            "rows": stats.rows,
            "csv_mb": round(stats.bytes / 1e6, 1),
            "generate_s": round(gen_s, 2),
            "bare_parse_s": round(parse_s, 3),
            "changed_products": len(change.changed),
            "removed_products": len(change.removed),
            "added_products": len(change.added),
        }
        for name in RUNS:
            out[name] = scenario(env, events[name])
        naive = out["naive_hourly"]["wall_s"]
        for name in RUNS:
            run = out[name]
            run["x_bare_parse"] = round(run["wall_s"] / parse_s, 2) if parse_s else None
            run["x_naive"] = round(run["wall_s"] / naive, 3) if naive else None
        if series:  # the state holds the edited file's content now (the naive run read it)
            out["hourly_series"] = hourly_series(env, (catalog, edited), series, naive)
        return out
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: the figures are not lost for it
            proc.kill()
            proc.wait()


def print_size(r: dict[str, Any]) -> None:
    size = r["products"]
    print(
        f"{size:>7,} products ({r['store_views']}): {r['rows']:,} rows, {r['csv_mb']} MB; "
        f"bare parse (csv.reader) {r['bare_parse_s']:.2f}s",
        flush=True,
    )
    for name in RUNS:
        s = r[name]
        print(
            f"{size:>7,} products {name:<20} items {s['items']:>8,} sent {s['items_sent']:>8,} "
            f"records not built {s['records_not_built']:>7,} "
            f"read+build+hash {s['read_build_hash_s']:>6.1f}s {s['read_items_per_s'] or 0:>7,}/s  "
            f"diff+snapshot+state {s['diff_snapshot_state_s']:>6.1f}s {s['diff_items_per_s'] or 0:>8,}/s  "
            f"export {s['export_s']:>6.1f}s {s['export_items_per_s'] or 0:>7,}/s "
            f"{s['requests']:>5,} requests (bound {s['requests_bound']:,})  "
            f"wall {s['wall_s']:>7.1f}s = {s['x_bare_parse']:>5.1f}x bare parse, "
            f"{s['x_naive']:>5.2f}x naive  "
            f"CPU {s['busy_cpu_s']:>6.1f}s on {s['cores']} cores ({s['cores_busy_pct']:.0f}% "
            f"busy; floor {s['cpu_floor_s']:.1f}s)  "
            f"peak RSS {s['peak_rss_all_mb']:>6.1f} MB all together (this process "
            f"{s['peak_rss_mb']:.1f} MB, largest worker {s['worker_peak_rss_mb']:.1f} MB)"
            + ("  (source unchanged: shortcut)" if s.get("source_unchanged") else ""),
            flush=True,
        )
    h = r.get("hourly_series")
    if h:
        print(
            f"{size:>7,} products hourly series of {h['syncs']} 1%-changed syncs in a row: "
            f"wall max {h['max_wall_s']:.1f}s ({h['max_x_naive']:.2f}x naive), "
            f"mean {h['mean_wall_s']:.1f}s; each: "
            + " ".join(f"{w:.1f}s" for w in h["wall_s"])
            + "; full parts written: "
            + " ".join(str(n) for n in h["full_parts_written"])
            + f"; peak RSS {h['peak_rss_all_mb']:.1f} MB all together",
            flush=True,
        )
    print(json.dumps(r), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--store-views", default=STORE_VIEWS, help=f"STORE_VIEWS (bench-large: {ONE_STORE_VIEW})"
    )
    parser.add_argument("--aco-products", type=int, default=10_000, help="0: no ACO bench")
    parser.add_argument(
        "--series", type=int, default=SERIES, help="hourly syncs in a row after the runs; 0: none"
    )
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",") if s.strip()):
        r = bench_size(size, args.seed, args.store_views, args.series)
        results.append(r)
        print_size(r)
    aco = None
    if args.aco_products:
        aco = bench_aco(args.aco_products, args.seed, scenario)
        print_aco(aco)
    print(json.dumps({"store_views": args.store_views, "results": results, "aco": aco}))


if __name__ == "__main__":
    main()
