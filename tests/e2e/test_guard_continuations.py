"""The mass-deletion guard's second pass across invocations (issue 10, point 2).

A sync whose deletions touch every bucket re-reads every bucket in its second pass:
that pass, too, stops after a chunk when the invocation's budget is spent and goes on
in the next invocation. The verdict is taken once (when the first pass ends) and
carried; the second pass's buckets done are not redone; a retried continuation
resumes from its own checkpoint. The whole local stack (moto over HTTP, the real
handlers and feed receiver), `RUN_TIME_BUDGET_SECONDS=0`: every invocation hands on
after one step.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog_sync.aws.dynamodb import DynamoFeedState
from catalog_sync.sync.continuation import Carry, load_carry, run_prefix
from devstack.synth import edit, generate
from tests.e2e.faults import CrashPlan, install_crashes
from tests.e2e.test_continuations import EVERY_STEP, TARGETS, Local, _counts

FEED = ("products",)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "catalog.csv"
    generate(path, 240, seed=11)
    return path


@pytest.fixture
def local(moto_endpoint: str) -> Iterator[Any]:
    """Makes fresh local stacks (`Local`), stopped after the test."""
    made: list[Local] = []

    def make(target: str, source: Path, **env: str) -> Local:
        made.append(Local(moto_endpoint, source, target, {**TARGETS[target][1], **env}))
        return made[-1]

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def bucket_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[int]]]:
    """The state buckets each table was asked for (every `read_buckets` call)."""
    seen: dict[str, list[int]] = {}
    real = DynamoFeedState.read_buckets

    def read_buckets(self: DynamoFeedState, feed: str, numbers: list[int]) -> Any:
        seen.setdefault(self.table, []).extend(numbers)
        return real(self, feed, numbers)

    monkeypatch.setattr(DynamoFeedState, "read_buckets", read_buckets)
    yield seen


def _stacks(local: Any, catalog: Path, tmp_path: Path, remove: int) -> dict[str, Any]:
    """Two stacks synced with the catalog, their source then `remove` products
    smaller: `whole` runs in one invocation, `steps` hands on at every step."""
    smaller = tmp_path / "smaller.csv"
    edit(catalog, smaller, remove=remove, seed=5, only_standalone=False)
    stacks = {}
    for name, env in (("whole", {}), ("steps", EVERY_STEP)):
        path = tmp_path / f"{name}.csv"
        path.write_bytes(catalog.read_bytes())
        s = local("commerce-services", path, FEEDS="products", **env)
        s.run(action="sync")
        path.write_bytes(smaller.read_bytes())
        stacks[name] = s
    return stacks


def _latest_carry(s: Any, run_id: str) -> Carry | None:
    blobs = s.runner.app.blobs
    keys = sorted(k for k in blobs.list_keys(run_prefix(run_id)) if "/carry-" in k)
    return load_carry(blobs, keys[-1]) if keys else None


@pytest.mark.parametrize(
    ("remove", "status", "flipped"),
    [
        (60, "held", {"max_delete_fraction": 1.0}),  # 25 %: held, whatever comes later
        (18, "completed", {"max_delete_fraction": 0.0}),  # under 10 %: applied
    ],
)
def test_e2e_the_second_pass_continues_across_invocations_on_the_verdict_taken_once(
    local: Any,
    catalog: Path,
    tmp_path: Path,
    bucket_reads: dict[str, list[int]],
    remove: int,
    status: str,
    flipped: dict[str, float],
) -> None:
    stacks = _stacks(local, catalog, tmp_path, remove)
    whole, steps = stacks["whole"], stacks["steps"]
    bucket_reads.clear()
    one = whole.runner.reindex({"action": "sync"})

    first = steps.runner.reindex({"action": "sync"}, follow=False)
    run_id = first["runs"][0]["run_id"]
    second: list[tuple[list[int], str | None]] = []  # each hand-on of the second pass
    while steps.runner.continue_runs(limit=1):
        carry = _latest_carry(steps, run_id)
        run = steps.runner.app.state.get_run("products", run_id)
        assert run is not None
        if run.status != "running" or carry is None:
            continue
        [fc] = carry.feeds
        if fc.second_pass and fc.deferred:
            second.append((sorted(fc.deferred), fc.held))
            assert run.buckets_done == min(fc.deferred)  # every bucket below is written
            # the verdict is taken: a change of the guard's settings no longer matters
            app = steps.runner.app
            app.settings = app.settings.model_copy(update=flipped)
    tables = {s.runner.app.settings.state_table: n for n, s in stacks.items()}
    reads = {tables[t]: sorted(numbers) for t, numbers in bucket_reads.items() if t in tables}
    whole.runner.drain()
    steps.runner.drain()

    run = steps.runner.app.state.get_run("products", run_id)
    assert run is not None and run.status == status == one["runs"][0]["status"]
    # the second pass spread over several invocations, each going on where the last
    # stopped, on one verdict
    assert len(second) >= 2, second
    for (before, _), (after, _) in itertools.pairwise(second):
        assert set(after) < set(before) and min(after) > max(set(before) - set(after))
    assert {held for _, held in second} == {run.held}
    assert (run.held is not None) == (status == "held")
    # not redone: each bucket read once by the first pass (STATE_BUCKETS=20), a bucket
    # with deletions once more by a second pass in another invocation; in one invocation
    # an allowed verdict writes what the first pass kept (a held one reads them again)
    deferred = second[0][0]
    assert len(deferred) >= 9  # deletions in most buckets: a second pass of 3+ chunks
    assert reads["steps"] == sorted([*range(20), *deferred])
    assert reads["whole"] == sorted([*range(20), *(deferred if status == "held" else [])])
    counts = _counts({"runs": [run.model_dump(mode="json")]})
    assert counts == _counts(one)
    assert counts["products"]["deletions_held" if status == "held" else "deleted"] > 0
    assert steps.content(FEED) == whole.content(FEED)
    assert steps.held(FEED) == whole.held(FEED)
    assert steps.staged() == []


def test_e2e_a_crash_in_the_second_pass_resumes_from_its_own_checkpoint(
    local: Any, catalog: Path, tmp_path: Path
) -> None:
    """A continuation of the second pass crashes after writing a bucket (it never
    learns it); SQS delivers it again and the retry goes on from the carry it started
    from: the run ends as one invocation would have."""
    stacks = _stacks(local, catalog, tmp_path, 18)
    whole, steps = stacks["whole"], stacks["steps"]
    whole.run(action="sync")
    plan = install_crashes(steps.runner.app, CrashPlan())

    first = steps.runner.reindex({"action": "sync"}, follow=False)
    run_id = first["runs"][0]["run_id"]
    while steps.runner.continue_runs(limit=1):
        carry = _latest_carry(steps, run_id)
        if carry is not None and carry.feeds[0].second_pass and carry.feeds[0].deferred:
            break  # the next continuation is in the second pass
    else:
        pytest.fail("the second pass never continued in another invocation")
    plan.arm("state", 2, "after")  # its second bucket written, then the crash
    assert steps.runner.continue_runs(limit=1) == 1
    assert len(plan.fired) == 1
    crashed = steps.runner.app.state.get_run("products", run_id)
    assert crashed is not None and crashed.status == "running"
    assert crashed.error is not None and "retried" in crashed.error
    steps.runner.continue_runs()
    steps.runner.drain()

    run = steps.runner.app.state.get_run("products", run_id)
    assert run is not None and run.status == "completed"
    assert run.counts["deleted"] > 0
    assert steps.content(FEED) == whole.content(FEED)
    assert steps.held(FEED) == whole.held(FEED)
    assert steps.staged() == []
