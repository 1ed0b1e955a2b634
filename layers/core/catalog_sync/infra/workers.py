"""Compile a partitioned read in a pool of worker processes.

A source that can `split` its read (the Magento CSV: after its first pass, the
rows sit in partition files by SKU) hands over independent partitions. A pool of
workers lives for the read of one invocation: each worker is started once, gets
the job's constant part once (the build context, the feeds, the previous run's
fingerprints), then builds one partition at a time, whichever the parent hands it
next (so the load balances), into its own spill segment next to the reindex's. For
each partition it reports back what cannot go through a file: issues, rejection
counts, aggregate items, fingerprints found, the number of records; the parent
merges them in partition order, so they come out as a serial read's. The diff then
reads every segment of a bucket, so it sees the same items as a serial read.

The parent hands partitions out in order and, once `stop` says so (the budget is
spent), hands out no more: the workers finish the one they have, and the partitions
compiled are always the first ones.

Workers are plain child processes (`infra.calls`): framed pickles in on stdin and
back on stdout, stderr is shared. A worker that fails or dies fails the read:
nothing has been written by then.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from catalog_sync.feeds.spec import BuildContext, FeedSpec
from catalog_sync.infra.calls import WorkerError, _reap, _receive, _send, _start
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
    """What every partition of a worker shares: sent once, when it starts."""

    number: int
    ctx: BuildContext
    feeds: list[tuple[FeedSpec, str, int]]  # (feed, spill folder, buckets); pickled by reference
    # per feed: the previous run's record fingerprints and the context digest (None:
    # the read collects no fingerprints)
    fingerprints: list[tuple[Fingerprints | None, str]] | None = None


@dataclass
class _Part:
    """What one partition gave, besides its spilled items."""

    records: int = 0
    source_records: int = 0  # records the source built (for its read report)
    warnings: list[SourceIssue] = field(default_factory=list)
    rejected: list[int] = field(default_factory=list)  # per feed
    issues: list[list[SourceIssue]] = field(default_factory=list)
    aggregates: list[list[dict[str, Any]]] = field(default_factory=list)
    found: list[FingerprintSet | None] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)


def _segment(number: int) -> str:
    return f".w{number}"


def child_main() -> None:
    """A worker process: framed pickles in on stdin (the job, then partitions), out
    on stdout."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write to the channel
    _serve(sys.stdin.buffer, out)


def _serve(inp: IO[bytes], out: IO[bytes]) -> None:
    try:
        _, job = _receive(inp)
        collectors = [
            Collector(spec, BucketSpill(Path(folder), buckets, _segment(job.number)))
            for spec, folder, buckets in job.feeds
        ]
        skip = _arm(collectors, job)
        warned = 0
        while True:
            kind, payload = _receive(inp)
            if kind == "end":
                break
            index, part = payload
            result = _Part()

            def warn(issue: SourceIssue, result: _Part = result) -> None:
                nonlocal warned
                if warned < MAX_WARNINGS_BACK:
                    warned += 1
                    result.warnings.append(issue)

            since = 0
            for entry in part.records(warn) if skip is None else part.records(warn, skip):
                if k := compile_record(entry, collectors, job.ctx):
                    result.records += k
                    since += k
                    if since >= PROGRESS_EVERY:
                        _send(out, ("progress", since))
                        since = 0
            result.source_records = part.built
            for c in collectors:  # this partition's share; the next starts afresh
                result.rejected.append(c.rejected)
                result.issues.append(c.issues)
                result.aggregates.append(list(c.aggregate.values()))
                result.found.append(c.found)
                result.unchanged.append(c.unchanged_records)
                c.rejected, c.issues, c.aggregate, c.unchanged_records = 0, [], {}, 0
                if c.found is not None:
                    c.found = FingerprintSet()
            _send(out, ("progress", since))
            _send(out, ("part", (index, result)))  # and ready for the next
        for c in collectors:
            c.spill.finish()
        _send(out, ("done", [c.spill.items for c in collectors]))
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
    prepare: Callable[[int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Compile `partitions` in a pool of `workers` processes into `collectors`;
    return how many were compiled: the first ones, all of them unless `stop()`
    (asked after each partition compiled) said True. `prepare(index)` runs before a
    partition is handed out (a staged one is fetched). `merge(records, warnings)`
    counts into the source's report. `fingerprints`: the collectors are armed
    (`sync.fingerprints.arm`); so are the workers'."""
    n = min(workers, len(partitions))
    if n == 0:
        return 0
    feeds = [(c.spec, str(c.spill.workdir), c.spill.buckets) for c in collectors]
    prints = [(c.prior, c.digest) for c in collectors] if fingerprints else None
    procs: list[subprocess.Popen[bytes]] = []
    parts: dict[int, _Part] = {}
    items: dict[int, list[int]] = {}
    given, stopped = 0, False
    selector = selectors.DefaultSelector()

    def give(number: int, message: tuple[str, Any]) -> None:
        stdin = procs[number].stdin
        assert stdin is not None
        try:
            _send(stdin, message)
        except BrokenPipeError:
            raise _ended(number, procs[number]) from None

    def hand_on(number: int) -> None:
        """The next partition to worker `number`, or the end of its work."""
        nonlocal given
        if given < len(partitions) and not stopped:
            if prepare is not None:
                prepare(given)
            give(number, ("part", (given, partitions[given])))
            given += 1
        else:
            give(number, ("end", None))

    try:
        procs.extend(_start(_CHILD) for _ in range(n))  # they start up side by side
        for number, proc in enumerate(procs):
            give(number, ("job", _Job(number, ctx, feeds, prints)))
            assert proc.stdout is not None
            selector.register(proc.stdout, selectors.EVENT_READ, number)
            hand_on(number)  # it builds while the next one gets its job
        while len(items) < n:
            for key, _ in selector.select():
                number = key.data
                stream: Any = key.fileobj
                try:
                    kind, payload = _receive(stream)
                except EOFError:
                    raise _ended(number, procs[number]) from None
                if kind == "progress":
                    if progress is not None:
                        progress(payload)
                elif kind == "error":
                    raise WorkerError(f"reindex worker {number} failed: {payload}")
                elif kind == "part":
                    index, result = payload
                    parts[index] = result
                    if stop is not None and not stopped:
                        stopped = stop()
                    hand_on(number)
                else:
                    items[number] = payload
                    selector.unregister(stream)
        for proc in procs:
            proc.wait()
    finally:
        selector.close()
        _reap(procs)
    _gather([parts[index] for index in range(given)], collectors, merge)
    for number in range(n):
        for i, c in enumerate(collectors):
            c.spill.adopt(_segment(number), items[number][i])
    return given


def _ended(number: int, proc: subprocess.Popen[bytes]) -> WorkerError:
    code = proc.wait()
    return WorkerError(f"reindex worker {number} ended (exit code {code}) before it finished")


def _gather(
    parts: list[_Part], collectors: list[Collector], merge: Callable[[int, list[SourceIssue]], None]
) -> None:
    """The partitions' reports into the collectors and the source's, in partition
    order (as a serial read adds them)."""
    for part in parts:
        merge(part.source_records, part.warnings)
        for i, c in enumerate(collectors):
            c.rejected += part.rejected[i]
            c.issues.extend(part.issues[i])
            for data in part.aggregates[i]:
                c.merge_one(data)
            found = part.found[i]
            if c.found is not None and found is not None:
                c.found.update(found)
            c.unchanged_records += part.unchanged[i]
