"""What a run carries from one invocation to the next when its time runs low.

An invocation has a budget (`Budget`: `RUN_TIME_BUDGET_SECONDS`, else the Lambda
context's remaining time less a margin). When it is spent, the run hands itself on:
what the next invocation needs goes to the snapshot bucket under
`continuations/<run id>/` (local disk does not survive an invocation):

- `carry-<n>.json` (`Carry`): the request, the read's report and watermark, and per
  feed how far its diff got (buckets done, counts, parts, buckets to export, issues);
  while the read itself goes on, where it stopped (`ReadCarry`, `sync.readstep`);
- `<feed>/spill-<bucket>[-<segment>].bin.z`: the compiled items of every bucket not
  diffed yet (staged once by the invocation that read the source, or one segment by
  each invocation that read part of it; `StagedSpill` reads a bucket's segments);
- `<feed>/found-<n>.bin`, `<feed>/aggregate-<n>.bin`: the record fingerprints the read
  found and (while it goes on) the aggregate items merged so far (`handon`);
- `source/part-<i>.bin.z`: the CSV partitions pass 2 has not built yet.

Then a `ContinuationMessage` names the carry. A hand-on writes a new carry
(`carry-<n+1>`), never the one it started from, so a retried continuation resumes
from exactly its own checkpoint. Everything under the run's prefix is removed when
the run completes.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from catalog_sync.errors import NotFoundError
from catalog_sync.infra.spill import BucketSpill
from catalog_sync.observability import get_logger
from catalog_sync.ports import BlobStore, Clock
from catalog_sync.sync.canonical import EncodedItem
from catalog_sync.sync.runs import RunKind
from catalog_sync.sync.state import PartRef

log = get_logger(__name__)

PREFIX = "continuations"
STAGE_LEVEL = 1  # zlib level of the staged buckets: fast, still several times smaller


def run_prefix(run_id: str) -> str:
    return f"{PREFIX}/{run_id}/"


def carry_key(run_id: str, sequence: int) -> str:
    return f"{run_prefix(run_id)}carry-{sequence:04d}.json"


def spill_key(run_id: str, feed: str, bucket: int, segment: int = 0) -> str:
    """A staged bucket; `segment`: the read invocation that compiled it (a read that
    continues across invocations stages what each of them compiled, side by side)."""
    tail = f"-{segment}" if segment else ""
    return f"{run_prefix(run_id)}{feed}/spill-{bucket:04d}{tail}.bin.z"


AHEAD_SECONDS = 30.0  # `Budget.ample`: far more than a chunk of buckets takes


class Budget:
    """When an invocation should hand its run on: once `seconds` have passed on the
    clock, and only after it made some progress (a read, a chunk of buckets, a feed
    finished), so every invocation moves the run forward. None: never."""

    def __init__(self, clock: Clock, seconds: float | None) -> None:
        self.clock = clock
        self.deadline = None if seconds is None else clock() + timedelta(seconds=seconds)
        self.progressed = False

    def progress(self) -> None:
        self.progressed = True

    def spent(self) -> bool:
        return self.deadline is not None and self.progressed and self.clock() >= self.deadline

    def ample(self, seconds: float = AHEAD_SECONDS) -> bool:
        """More than `seconds` left (always, without a deadline): time enough to start
        work ahead that the next chunk uses (`Differ.run`'s `ahead`)."""
        return self.deadline is None or self.clock() + timedelta(seconds=seconds) < self.deadline

    def stop_after_chunk(self, done: int) -> bool:
        """`Differ.run`'s `stop`: a chunk was diffed (progress); stop if time is up."""
        self.progressed = True
        return self.spent()


class FeedCarry(BaseModel):
    """One feed's part of a run, as far as it got."""

    feed: str
    buckets: int
    buckets_done: int = 0
    diffed: bool = False
    finished: bool = False
    counts: dict[str, int] = Field(default_factory=dict)
    parts: dict[int, dict[str, object]] = Field(default_factory=dict)  # bucket -> PartRef
    to_export: list[int] = Field(default_factory=list)
    pending: dict[int, int] = Field(default_factory=dict)  # bucket -> items to send
    live: int = 0  # the mass-deletion guard's count of live items so far (first pass)
    deferred: dict[int, int] = Field(default_factory=dict)  # bucket -> its would-be deletions
    # the guard's verdict is taken (the first pass is done; `deferred`: the buckets its
    # second pass has still to write) and what it said (None: deletions applied)
    second_pass: bool = False
    held: str | None = None
    issues: list[dict[str, object]] = Field(default_factory=list)
    rejected: int = 0
    unchanged_records: int = 0  # records not built (their fingerprint was known)
    items_read: int = 0
    staged: dict[int, list[int]] | None = None  # bucket -> its staged segments (None: all at 0)
    found_key: str | None = None  # the record fingerprints the read found (staged)
    prior_key: str | None = None  # the previous run's fingerprints the read skips by
    digest: str = ""  # the context both are valid in

    def part_refs(self) -> dict[int, PartRef]:
        return {b: PartRef.from_dict(ref) for b, ref in self.parts.items()}


class ReadCarry(BaseModel):
    """A read that goes on in the next invocation: where it stopped, and what the
    source reported so far (`sync.readstep`)."""

    source: Literal["csv", "rest"]
    position: int = 0  # csv: partitions of pass 2 done; rest: the last entity_id read
    complete: bool = True
    rows: int = 0
    records: int = 0
    issues: list[dict[str, Any]] = Field(default_factory=list)
    store_views: list[str] = Field(default_factory=list)
    high_water_mark: str | None = None  # rest: the greatest updated_at seen so far
    warnings: int = 0  # csv: warnings counted so far (the source lists the first ones)
    partitions: int = 0  # csv: pass 1's partitions, staged once
    header: list[str] = Field(default_factory=list)  # csv: the file's header
    stocks: list[dict[str, Any]] = Field(default_factory=list)  # csv: the stock layout
    fingerprints: bool = False  # csv: the partitions give record fingerprints
    segment: int = 0  # the last spill segment staged (one per read invocation)


class Carry(BaseModel):
    """Everything a continuation needs to go on with a run."""

    run_id: str
    sequence: int
    started_at: str  # the run's time: every invocation diffs as of it
    mode: RunKind
    by_ids: list[str] | None = None
    resume_from: int = 0
    resumed_from: str | None = None
    confirm_deletions: bool = False
    source: str | None = None
    read_complete: bool = True
    read_rows: int = 0
    read_records: int = 0
    mark: str | None = None  # the watermark the read reached (moved when the run completes)
    mark_full: bool = False
    windows: dict[str, str | None] | None = None  # the read's price windows (sync/windows.py)
    read: ReadCarry | None = None  # the read goes on (None: it is done)
    feeds: list[FeedCarry]

    @property
    def now(self) -> datetime:
        return datetime.fromisoformat(self.started_at)


def save_carry(blobs: BlobStore, carry: Carry) -> str:
    key = carry_key(carry.run_id, carry.sequence)
    blobs.put_bytes(key, carry.model_dump_json().encode())
    return key


def load_carry(blobs: BlobStore, key: str) -> Carry:
    return Carry.model_validate_json(blobs.get_bytes(key))


def stage_spill(
    blobs: BlobStore,
    spill: BucketSpill,
    run_id: str,
    feed: str,
    start: int,
    workdir: Path,
    segment: int = 0,
) -> list[int]:
    """Copy the spilled items of buckets `start..` to the snapshot bucket, one object
    per bucket: its segments concatenated (they read as one), compressed (zlib, fast
    level: item JSON shrinks several times); return the buckets written."""
    staged: list[int] = []
    for bucket in range(start, spill.buckets):
        files = spill.bucket_files(bucket)
        if not files:
            continue
        packer = zlib.compressobj(STAGE_LEVEL)
        joined = workdir / f"staged-{bucket:04d}.bin.z"
        with open(joined, "wb") as out:
            for path in files:
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        out.write(packer.compress(chunk))
            out.write(packer.flush())
        blobs.put_file(spill_key(run_id, feed, bucket, segment), joined)
        joined.unlink()
        staged.append(bucket)
    return staged


class StagedSpill(BucketSpill):
    """A spill whose buckets were staged in the snapshot bucket by an earlier
    invocation: each is fetched when the diff reads it (and stays staged, so that a
    retried continuation reads it again). `segments`: bucket -> the staged segments
    that hold some of it (a read over several invocations staged one per invocation);
    None: every bucket at segment 0 that was staged at all."""

    def __init__(
        self,
        workdir: Path,
        buckets: int,
        blobs: BlobStore,
        run_id: str,
        feed: str,
        items: int,
        segments: dict[int, list[int]] | None = None,
    ) -> None:
        super().__init__(workdir, buckets)
        self.blobs = blobs
        self.run_id = run_id
        self.feed = feed
        self.items = items
        self.staged = segments

    def read(
        self, bucket: int, *, consume: bool = True
    ) -> tuple[dict[str, EncodedItem], set[str], set[str], list[str]]:
        """The bucket as staged (`consume` does not matter: the staged object stays
        until the run completes, so a second read, or a retry, fetches it again)."""
        segments = [0] if self.staged is None else self.staged.get(bucket, [])
        with open(self._path(bucket, self.segment), "wb") as out:
            for segment in segments:
                try:
                    data = self.blobs.get_bytes(spill_key(self.run_id, self.feed, bucket, segment))
                except NotFoundError:
                    continue  # nothing was compiled into this bucket
                out.write(zlib.decompress(data))  # segments concatenated read as one
        return super().read(bucket)


def drop_staged(blobs: BlobStore, run_id: str) -> None:
    """Remove what the run staged (best effort: the bucket's lifecycle rule expires
    `continuations/` anyway)."""
    try:
        keys = list(blobs.list_keys(run_prefix(run_id)))
        if keys:
            blobs.delete_keys(keys)
    except Exception:  # storage hiccup: the lifecycle rule removes them later
        log.warning("could not remove what run %s staged", run_id, exc_info=True)
