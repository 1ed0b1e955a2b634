"""Taking a feed's lease, so that the schedules never starve each other.

The hourly sync and the 10-minute resend fire at the same minute and share the
feed's lease (one run per feed). A resend that meets any run steps aside: every
reindex run queues the buckets whose items wait (`retry`, stuck `pending`), so the
holder does the resend's work. A sync that meets a resend waits for it (a resend
reads no source: it takes seconds) up to `LEASE_WAIT_SECONDS`, so the sync is not
skipped; a sync that meets another sync or a resync is skipped (a `RunsSkipped`
metric, see `app.py`).

A run handed on to a follow-up invocation keeps its lease between invocations, and a
continuation that crashes (or times out) is delivered again by SQS only after the
continuation queue's visibility timeout (960 s), later than `LEASE_SECONDS` (900 s)
would last. So the lease of a run in continuations (renewed at each hand-on and at the
start of each continuation) lasts `handed_on_ttl`: the visibility timeout plus a
margin for the redelivered invocation to start; no other run can take the lease in
that gap, and the retry finds the lease still its own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from catalog_sync.errors import LeaseHeldError
from catalog_sync.observability import get_logger
from catalog_sync.ports import FeedState
from catalog_sync.sync.runs import RunKind, RunRecord

log = get_logger(__name__)

POLL_SECONDS = 2.0
# from the visibility timeout's end to the redelivered continuation taking its lease
# again: the event source's poll, a cold start, the settings and adapters
REDELIVERY_MARGIN_SECONDS = 120


def handed_on_ttl(lease_seconds: int, visibility_seconds: int) -> int:
    """The lease of a run between and during its continuations: it outlives a failed
    continuation's redelivery (`visibility_seconds` after its receipt, which was
    before the lease was taken), and is never shorter than `lease_seconds`."""
    return max(lease_seconds, visibility_seconds + REDELIVERY_MARGIN_SECONDS)


def newer_run(state: FeedState, runs: list[RunRecord]) -> str | None:
    """Which run started on the feed of one of `runs` (a run's records) after it, if
    any. A continuation that finds one lost its lease in between, even if that run has
    released it again: a continuation redriven from the DLQ after its lease expired
    must not write its old read over what a later run wrote. (By start time, not run
    id: two runs of one instant, a frozen test clock, are not one after the other.)"""
    for run in runs:
        newest = state.list_runs(run.feed, limit=1)
        if not newest or newest[0].run_id == run.run_id:
            continue
        if datetime.fromisoformat(newest[0].started_at) > datetime.fromisoformat(run.started_at):
            return f"run {newest[0].run_id} of feed {run.feed} started after its lease expired"
    return None


def take_lease(
    state: FeedState,
    feed: str,
    run_id: str,
    mode: RunKind,
    *,
    clock: Callable[[], datetime],
    ttl_seconds: int,
    wait_seconds: float,
    sleep: Callable[[float], None],
) -> None:
    """Take `feed`'s lease for `run_id`; a sync waits for a resend holding it.
    Raises `LeaseHeldError` when the lease stays held."""
    waited = 0.0
    unknown_seen = False
    while True:
        try:
            state.acquire_lease(feed, run_id, clock(), ttl_seconds)
            return
        except LeaseHeldError as exc:
            if mode != "sync" or waited >= wait_seconds:
                raise
            holder = state.get_run(feed, exc.holder)
            if holder is None and not unknown_seen:
                unknown_seen = True  # a run writes its record just after its leases
            elif holder is None or holder.kind != "resend" or holder.status != "running":
                raise
            log.info("%s: the lease is held by resend %s; waiting for it", feed, exc.holder)
            step = min(POLL_SECONDS, wait_seconds - waited)
            sleep(step)
            waited += step
