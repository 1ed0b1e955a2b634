"""Run records, feed metadata and per-part export results."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

RunKind = Literal[
    "sync",
    "resync",
    "resync-no-reindex",
    "resync-by-ids",
    "resync-continue",
    "resync-cleanup",
    "resend",
]
# held: completed, but its deletions are held by the mass-deletion guard (sync/guard.py)
RunStatus = Literal["running", "completed", "held", "failed", "dry-run"]
FINISHED = ("completed", "held")  # a run that wrote its manifest and queued its messages

DEFAULT_BUCKETS = 64


class FeedMeta(BaseModel):
    feed: str
    buckets: int = DEFAULT_BUCKETS
    latest_manifest: str | None = None  # key of the newest snapshot manifest
    last_run_id: str | None = None
    source_watermark: str | None = None  # sources that read incrementally: read up to here
    last_full_read: str | None = None  # when the source was last read in full (ISO 8601)
    fingerprints: str | None = None  # the record fingerprints of the last run (a blob key)
    # the source's bytes the last complete run read, and what it made of them
    # (`sync.unchanged`); cleared under the lease before a run that reads writes
    source_seal: dict[str, Any] | None = None


class RunRecord(BaseModel):
    feed: str
    run_id: str
    kind: RunKind
    status: RunStatus = "running"
    started_at: str
    finished_at: str | None = None
    source: str | None = None
    complete: bool | None = None  # the source read was complete (deletions allowed)
    counts: dict[str, int] = Field(default_factory=dict)
    issues: list[dict[str, object]] = Field(default_factory=list)  # the first ones
    issues_total: int = 0
    manifest: str | None = None
    parts_enqueued: int = 0  # buckets queued for export (each gets a part result)
    messages_enqueued: int = 0  # the export messages carrying them
    buckets_done: int = 0  # checkpoint: the diff got this far
    continuations: int = 0  # follow-up invocations handed this run so far
    resumed_from: str | None = None  # the interrupted run this one continues
    error: str | None = None
    held: str | None = None  # why its deletions (counts["deletions_held"]) are held
    # the source was byte for byte what this run's read saw: nothing read, built or
    # diffed (`sync.unchanged`)
    source_unchanged: str | None = None


class KeyRange(BaseModel):
    """A slice of a bucket: the pending items whose key is `low` <= key < `high`
    (None: no bound). `index`: which of the bucket's slices (0, 1, ...): each slice
    gets a part result of its own."""

    index: int = Field(ge=0)
    low: str | None = None
    high: str | None = None

    def holds(self, key: str) -> bool:
        return (self.low is None or key >= self.low) and (self.high is None or key < self.high)


class PartResult(BaseModel):
    feed: str
    run_id: str
    bucket: int
    finished_at: str
    counts: dict[str, int] = Field(default_factory=dict)  # sent, failed, retry, skipped
    failures: list[dict[str, str]] = Field(default_factory=list)  # the first ones: key, reason
    error: str | None = None  # the export of this part stopped with this error
    slice: KeyRange | None = None  # the bucket's keys this result is of (None: all)

    @property
    def unit(self) -> tuple[int, int]:
        """(bucket, slice index): what the run queued one result for."""
        return self.bucket, self.slice.index if self.slice else 0

    @property
    def sk(self) -> str:
        """The result's sort key under its run (`part#0007`, a later slice `part#0007.01`)."""
        index = self.slice.index if self.slice else 0
        return f"part#{self.bucket:04d}" + (f".{index:02d}" if index else "")

    def covers(self, bucket: int, key: str) -> bool:
        return self.bucket == bucket and (self.slice is None or self.slice.holds(key))


class ContinuationMessage(BaseModel):
    """The follow-up invocation of a run whose invocation ran out of time: the run,
    its feeds, and the checkpoint (`sequence`: the n-th continuation) it resumes from."""

    run_id: str
    feeds: list[str]
    sequence: int = Field(ge=1)
    carry_key: str  # the checkpoint object in the snapshot bucket
