"""Compile a partitioned read in worker processes.

A source that can `split` its read (the Magento CSV: after its first pass, the
rows sit in partition files by SKU) hands over independent partitions. Each
worker builds, encodes and spills the items of its share of them into its own
spill segment next to the reindex's, and reports back what cannot go through a
file: issues, rejection counts, aggregate items, the number of records. The diff
then reads every segment of a bucket, so it sees the same items as a serial read.

Workers are plain child processes (`infra.calls`): the job goes in on stdin,
length-prefixed pickles come back on stdout, stderr is shared. A worker that
fails or dies fails the read: nothing has been written by then.
"""

from __future__ import annotations

import os
import pickle
import selectors
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from catalog_sync.feeds.spec import BuildContext, FeedSpec
from catalog_sync.infra.calls import WorkerError, _reap, _receive, _send, _spawn
from catalog_sync.infra.spill import BucketSpill
from catalog_sync.records import SourceIssue
from catalog_sync.sync.compile import Collector, compile_record
from catalog_sync.sync.fingerprints import Fingerprints, FingerprintSet, skipper

PROGRESS_EVERY = 5_000  # records between a worker's progress messages
MAX_WARNINGS_BACK = 1_000  # warnings a worker sends back (the source keeps fewer)
MAX_AUTO_WORKERS = 4


class SourcePartition(Protocol):
    """One independent share of a split read (picklable)."""

    built: int  # records the source built, once `records` is exhausted

    def records(
        self, warn: Callable[[SourceIssue], None], skip: Callable[[int], float | None] = ...
    ) -> Any: ...


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def resolve_workers(setting: int) -> int:
    """`REINDEX_WORKERS`: 0 means one per available CPU (at most 4); 1 means none."""
    if setting > 0:
        return setting
    return max(1, min(MAX_AUTO_WORKERS, available_cpus()))


@dataclass
class _Job:
    number: int
    partitions: list[SourcePartition]
    ctx: BuildContext
    feeds: list[tuple[FeedSpec, str, int]]  # (feed, spill folder, buckets); pickled by reference
    # per feed: the previous run's record fingerprints and the context digest (None:
    # the read collects no fingerprints)
    fingerprints: list[tuple[Fingerprints | None, str]] | None = None


@dataclass
class _Result:
    records: int = 0
    source_records: int = 0  # records the source built (for its read report)
    warnings: list[SourceIssue] = field(default_factory=list)
    items: list[int] = field(default_factory=list)  # per feed
    rejected: list[int] = field(default_factory=list)
    issues: list[list[SourceIssue]] = field(default_factory=list)
    aggregates: list[list[dict[str, Any]]] = field(default_factory=list)
    found: list[FingerprintSet | None] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)


def _segment(number: int) -> str:
    return f".w{number}"


def child_main() -> None:
    """A worker process: a pickled job on stdin, framed pickles on stdout."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the channel
    job = pickle.load(sys.stdin.buffer)
    _compile_job(job, out)


def _compile_job(job: _Job, out: IO[bytes]) -> None:
    try:
        collectors = [
            Collector(spec, BucketSpill(Path(folder), buckets, _segment(job.number)))
            for spec, folder, buckets in job.feeds
        ]
        skip = _arm(collectors, job)
        result = _Result()

        def warn(issue: SourceIssue) -> None:
            if len(result.warnings) < MAX_WARNINGS_BACK:
                result.warnings.append(issue)

        since = 0
        for part in job.partitions:
            for entry in part.records(warn) if skip is None else part.records(warn, skip):
                if compile_record(entry, collectors, job.ctx):
                    result.records += 1
                    since += 1
                    if since >= PROGRESS_EVERY:
                        _send(out, ("progress", since))
                        since = 0
            result.source_records += part.built
        for c in collectors:
            c.spill.finish()
            result.items.append(c.spill.items)
            result.rejected.append(c.rejected)
            result.issues.append(c.issues)
            result.aggregates.append(list(c.aggregate.values()))
            result.found.append(c.found)
            result.unchanged.append(c.unchanged_records)
        _send(out, ("progress", since))
        _send(out, ("done", result))
    except BaseException as exc:  # report anything, then die
        lines = "".join(traceback.format_exception(exc)).strip().splitlines()
        _send(out, ("error", f"{type(exc).__name__}: {exc} [{' | '.join(lines[-3:])}]"))
        raise


def _arm(collectors: list[Collector], job: _Job) -> Callable[[int], float | None] | None:
    """The worker's collectors collect fingerprints as the reindex's do."""
    if job.fingerprints is None:
        return None
    for c, (prior, digest) in zip(collectors, job.fingerprints, strict=True):
        if not c.spec.aggregate:
            c.prior, c.found, c.digest = prior, FingerprintSet(), digest
    return skipper([c.prior for c in collectors], job.ctx.now.timestamp())


_CHILD = "from catalog_sync.infra.workers import child_main; child_main()"


def compile_partitions(
    partitions: list[SourcePartition],
    collectors: list[Collector],
    ctx: BuildContext,
    workers: int,
    *,
    merge: Callable[[int, list[SourceIssue]], None],
    progress: Callable[[int], None] | None = None,
    fingerprints: bool = False,
) -> int:
    """Compile `partitions` in `workers` processes into `collectors`; return the
    number of records. `merge(records, warnings)` counts into the source's report.
    `fingerprints`: the collectors are armed (`sync.fingerprints.arm`); so are the workers'."""
    n = min(workers, len(partitions))
    feeds = [(c.spec, str(c.spill.workdir), c.spill.buckets) for c in collectors]
    prints = [(c.prior, c.digest) for c in collectors] if fingerprints else None
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[int, _Result] = {}
    selector = selectors.DefaultSelector()
    try:
        for number in range(n):
            job = _Job(number, partitions[number::n], ctx, feeds, prints)
            proc = _spawn(_CHILD, job)
            procs.append(proc)
            assert proc.stdout is not None
            selector.register(proc.stdout, selectors.EVENT_READ, number)
        while len(results) < n:
            for key, _ in selector.select():
                number = key.data
                stream: Any = key.fileobj
                try:
                    kind, payload = _receive(stream)
                except EOFError:
                    code = procs[number].wait()
                    raise WorkerError(
                        f"reindex worker {number} ended (exit code {code}) before it finished"
                    ) from None
                if kind == "progress":
                    if progress is not None:
                        progress(payload)
                elif kind == "error":
                    raise WorkerError(f"reindex worker {number} failed: {payload}")
                else:
                    results[number] = payload
                    selector.unregister(stream)
        for proc in procs:
            proc.wait()
    finally:
        selector.close()
        _reap(procs)
    records = 0
    for number in range(n):
        result = results[number]
        records += result.records
        merge(result.source_records, result.warnings)
        for i, c in enumerate(collectors):
            c.spill.adopt(_segment(number), result.items[i])
            c.rejected += result.rejected[i]
            c.issues.extend(result.issues[i])
            for data in result.aggregates[i]:
                c.merge_one(data)
            found = result.found[i]
            if c.found is not None and found is not None:
                c.found.update(found)
            c.unchanged_records += result.unchanged[i]
    return records
