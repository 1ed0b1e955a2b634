"""One benchmark scenario in a fresh process (so peak RSS is its own):
`python -m bench.scenario EVENT_JSON` with the local stack's environment.
Prints one JSON object: stage times, items/s, peak RSS, and the CPU the machine spent
meanwhile (all processes: this one, its workers, the moto server, the receiver)."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import sys
import threading
import time
import urllib.request
from typing import Any

from devstack.local import LocalRunner


class RssSampler:
    """The memory of this process and its worker processes, from /proc every 50 ms:
    the largest sum of their resident sets at one instant (all processes together)
    and each worker's own high-water mark (VmHWM: it starts again at exec, where
    `ru_maxrss` of a child counts the parent's pages it had at fork)."""

    def __init__(self) -> None:
        self.together_kb = 0
        self.worker_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = str(os.getpid())
        while not self._stop.wait(0.05):
            total = _status(me).get("VmRSS", 0)
            for pid in _children(me):
                status = _status(pid)
                total += status.get("VmRSS", 0)
                self.worker_kb = max(self.worker_kb, status.get("VmHWM", 0))
            self.together_kb = max(self.together_kb, total)


def _children(pid: str) -> set[str]:
    """The child processes of `pid` (every thread's children file)."""
    out: set[str] = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.update(f.read().split())
        except FileNotFoundError:
            pass
    return out


def _status(pid: str) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    out[name] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return out


def busy_seconds() -> float:
    """CPU time the whole machine has spent busy so far (every core, all processes:
    user, nice, system, irq, softirq and steal of /proc/stat), in seconds."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def cores() -> int:
    return len(os.sched_getaffinity(0))


def batch_size(sink: Any, feed: str) -> int:
    """The items a request of `feed` holds at most: the feed API's `max_items`, or
    ACO's batch size of the feed's entity (100 for products, 500 for prices)."""
    sizes = getattr(sink, "batch_sizes", None)
    if sizes is not None:
        from catalog_sync.sinks.aco import wire

        return int(sizes[wire.entity(feed).name])
    return int(sink.max_items)


def release_memory() -> None:
    """Collect, then give the freed heap back to the kernel (glibc's `malloc_trim`):
    in Lambda the reindex and the export are different functions, so the export's
    consumers do not run beside the reindex's high-water mark."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: the heap is kept
        ctypes.CDLL("libc.so.6").malloc_trim(0)


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

    def progress(stage: str, done: int, total: int | None) -> None:
        if total is not None and done >= total:
            marks.setdefault(stage, time.perf_counter() - t_start)

    runner = LocalRunner(dict(os.environ), progress=progress)
    requests_before = receiver_requests()
    t_start = time.perf_counter()  # the stage marks count from here, as the reindex does
    busy_start = busy_seconds()
    with RssSampler() as rss:
        result = runner.reindex(event)
        t_reindex = time.perf_counter() - t_start
        release_memory()  # the export is another function: the reindex's heap is not its
        t1 = time.perf_counter()
        drained = runner.drain(max_seconds=3600)
        t_export = time.perf_counter() - t1
    busy_s = busy_seconds() - busy_start
    requests = receiver_requests() - requests_before
    runs = result["runs"]
    # items the run covered: built, or standing for a record not built (fingerprints)
    items = sum(
        r["counts"].get("items_read", 0) + r["counts"].get("items_not_built", 0) for r in runs
    )
    not_built = sum(r["counts"].get("records_unchanged", 0) for r in runs)
    # snapshot parts written whole (a bucket's first, or its delta parts compacted), and
    # delta parts written
    parts_written = sum(r["counts"].get("parts_written", 0) for r in runs)
    deltas_written = sum(r["counts"].get("deltas_written", 0) for r in runs)
    queued = sum(
        r["counts"].get(k, 0) for r in runs for k in ("new", "changed", "deleted", "requeued")
    )
    sent = 0
    bound = 0  # the bound on requests: per feed with items to send, ceil(k/batch) + 1
    for r in runs:
        batch = batch_size(runner.app.sink, r["feed"])
        feed_sent = 0
        for part in runner.app.state.list_part_results(r["feed"], r["run_id"]):
            feed_sent += part.counts.get("sent", 0)
        sent += feed_sent
        bound += -(-feed_sent // batch) + 1 if feed_sent else 0
    read_s = marks.get("read", t_reindex)
    # everything after the read: the diff's passes (a run with deletions diffs their
    # buckets again, after the guard's verdict), the snapshot parts, state and messages
    diff_s = t_reindex - read_s
    # VmHWM, not ru_maxrss: a process's ru_maxrss counts the pages its parent (the bench,
    # which generated the catalog) had when it forked it
    peak_mb = _status("self").get("VmHWM", 0) / 1024
    out = {
        "items": items,
        "items_sent": sent,
        "items_queued": queued,
        # the run stood on an earlier read of the same bytes (sync/unchanged.py)
        "source_unchanged": any(r.get("source_unchanged") for r in runs),
        "records_not_built": not_built,
        "parts": drained.succeeded,
        "full_parts_written": parts_written - deltas_written,
        "deltas_written": deltas_written,
        "requests": requests,  # feed requests the receiver answered (all feeds)
        "requests_bound": bound,
        "read_build_hash_s": round(read_s, 3),
        "diff_snapshot_state_s": round(diff_s, 3),
        "reindex_s": round(t_reindex, 3),
        "export_s": round(t_export, 3),
        "wall_s": round(t_reindex + t_export, 3),
        # CPU the machine spent over the run, all processes: on `cores` cores the wall
        # cannot be shorter than busy_s / cores (the floor of this code on this machine)
        "busy_cpu_s": round(busy_s, 2),
        "cores": cores(),
        "cpu_floor_s": round(busy_s / cores(), 2),
        "cores_busy_pct": round(100 * busy_s / (cores() * (t_reindex + t_export)), 1),
        "read_items_per_s": round(items / read_s) if read_s else None,
        "diff_items_per_s": round(items / diff_s) if diff_s > 0 else None,
        "export_items_per_s": round(sent / t_export) if t_export and sent else None,
        "peak_rss_mb": round(peak_mb, 1),
        # the largest worker process's own peak (0: the read was not split)
        "worker_peak_rss_mb": round(rss.worker_kb / 1024, 1),
        # this process and its workers at once, at the largest (sampled every 50 ms)
        "peak_rss_all_mb": round(max(rss.together_kb / 1024, peak_mb), 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
