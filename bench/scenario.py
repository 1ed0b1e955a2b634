"""One benchmark scenario in a fresh process (so peak RSS is its own):
`python -m bench.scenario EVENT_JSON` with the local stack's environment.
Prints one JSON object: stage times, items/s, peak RSS."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import urllib.request

from catalog_sync.infra.workers import resolve_workers
from devstack.local import LocalRunner


def receiver_requests() -> int:
    """Requests the local receiver (or the ACO emulator) has answered so far (`/_stats`)."""
    url = os.environ["SAAS_BASE_URL"].rstrip("/") + "/_stats"
    with urllib.request.urlopen(url, timeout=10) as resp:
        stats = json.load(resp)
    if "requests" in stats:  # the feed receiver
        return int(stats["requests"]["total"])
    return sum(int(n) for n in stats.get("statuses", {}).values())  # the ACO emulator


def main() -> None:
    event = json.loads(sys.argv[1])
    marks: dict[str, float] = {}
    t0 = time.perf_counter()

    def progress(stage: str, done: int, total: int | None) -> None:
        if total is not None and done >= total:
            marks.setdefault(stage, time.perf_counter() - t0)

    runner = LocalRunner(dict(os.environ), progress=progress)
    requests_before = receiver_requests()
    t_start = time.perf_counter()
    result = runner.reindex(event)
    t_reindex = time.perf_counter() - t_start
    t1 = time.perf_counter()
    drained = runner.drain(max_seconds=3600)
    t_export = time.perf_counter() - t1
    requests = receiver_requests() - requests_before
    runs = result["runs"]
    # items the run covered: built, or standing for a record not built (fingerprints)
    items = sum(
        r["counts"].get("items_read", 0) + r["counts"].get("items_not_built", 0) for r in runs
    )
    not_built = sum(r["counts"].get("records_unchanged", 0) for r in runs)
    queued = sum(
        r["counts"].get(k, 0) for r in runs for k in ("new", "changed", "deleted", "requeued")
    )
    sent = 0
    bound = 0  # the bound on requests: per feed with items to send, ceil(k/batch) + 1
    batch = int(os.environ.get("SAAS_MAX_ITEMS", "1000") or 1000)
    for r in runs:
        feed_sent = 0
        for part in runner.app.state.list_part_results(r["feed"], r["run_id"]):
            feed_sent += part.counts.get("sent", 0)
        sent += feed_sent
        bound += -(-feed_sent // batch) + 1 if feed_sent else 0
    read_s = marks.get("read", t_reindex)
    diff_s = marks.get("diff", t_reindex) - read_s
    out = {
        "items": items,
        "items_sent": sent,
        "items_queued": queued,
        # the run stood on an earlier read of the same bytes (sync/unchanged.py)
        "source_unchanged": any(r.get("source_unchanged") for r in runs),
        "records_not_built": not_built,
        "parts": drained.succeeded,
        "requests": requests,  # feed requests the receiver answered (all feeds)
        "requests_bound": bound,
        "read_build_hash_s": round(read_s, 3),
        "diff_snapshot_state_s": round(diff_s, 3),
        "reindex_s": round(t_reindex, 3),
        "export_s": round(t_export, 3),
        "wall_s": round(t_reindex + t_export, 3),
        "read_items_per_s": round(items / read_s) if read_s else None,
        "diff_items_per_s": round(items / diff_s) if diff_s > 0 else None,
        "export_items_per_s": round(sent / t_export) if t_export and sent else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        # the largest reindex worker process (0: the read was not split)
        "worker_peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        ),
    }
    # all processes together, at most: this one and each worker at the largest's peak
    # (the workers run at the same time; pass 1's range readers come and go before them)
    workers = resolve_workers(int(os.environ.get("REINDEX_WORKERS", "0") or 0))
    largest = out["worker_peak_rss_mb"]
    out["workers"] = workers if largest else 0
    out["peak_rss_all_mb"] = round(out["peak_rss_mb"] + out["workers"] * largest, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
