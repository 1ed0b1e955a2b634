"""The export records request n and prepares n+2 while n+1 is out
(`ExportDeps.overlap`): still one request out at a time, each decided on before the
next goes. Whatever happens to request n meanwhile (a give-up, failed items, an auth
error, a crash, the budget, an error reading n+1's items), the requests, outcomes,
retries and part results are the ones sending and recording in turn gives; a crash in
a record re-sends that request and the one out, nothing more."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from catalog_sync.errors import AuthError, RetryableError
from catalog_sync.ports import ItemOutcome, OutgoingItem
from catalog_sync.sync.export import Budget, ExportDeps, export_part
from catalog_sync.sync.snapshot import ExportMessage
from tests.unit.test_export_messages import ITEMS, Batching, Ticks, world

GIVE_UP = ItemOutcome("retry", "HTTP 503 after 5 tries")


@dataclass
class Scripted(Batching):
    """Batching with a script per request number (1-based): an outcome for every item
    of that request, or an exception it raises. `threads` notes where each send ran."""

    script: dict[int, ItemOutcome | Exception] = field(default_factory=dict)
    threads: list[str] = field(default_factory=list)
    ticks: Ticks = field(default_factory=Ticks)  # each request takes `seconds` of it
    seconds: float = 0.0

    def send(self, feed: str, items: Sequence[OutgoingItem]) -> list[ItemOutcome]:
        self.threads.append(threading.current_thread().name)
        self.ticks.now += self.seconds
        step = self.script.get(len(self.requests) + 1)
        if isinstance(step, Exception):
            self.requests.append(len(items))
            raise step
        if step is not None:
            self.requests.append(len(items))
            self.calls.append([i.key for i in items])
            return [step] * len(items)
        return super().send(feed, items)


def run(overlap: bool, sink: Scripted, **kw: Any) -> dict[str, Any]:
    """Export the first message of a fresh world; what it did, comparable across modes."""
    w, messages = world(sink)
    deps = ExportDeps(
        state=w.state, blobs=w.blobs, sink=w.sink, clock=w.clock, overlap=overlap, **kw
    )
    error: str | None = None
    result = None
    try:
        result = export_part(messages[0], deps)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    records = w.state.all_records("toy")
    parts = w.state.list_part_results("toy", messages[0].run_id)
    return {
        "error": error,
        "requests": list(sink.requests),
        "calls": [list(c) for c in sink.calls],
        "records": {k: (r.status, r.reason, r.attempts) for k, r in sorted(records.items())},
        "parts": sorted((p.bucket, p.counts, p.failures, p.error) for p in parts),
        "counts": result.counts if result else None,
        "handed_back": result.handed_back.model_dump() if result and result.handed_back else None,
        "world": w,
        "message": messages[0],
    }


def same_as_serial(make_sink: Any, **kw: Any) -> dict[str, Any]:
    serial = run(False, make_sink(), **kw)
    overlapped = run(True, make_sink(), **kw)
    for name in ("error", "requests", "calls", "records", "parts", "counts", "handed_back"):
        assert overlapped[name] == serial[name], name
    return overlapped


def test_export_overlap_a_give_up_on_a_request_sends_nothing_after_it():
    got = same_as_serial(lambda: Scripted(size=6, script={2: GIVE_UP}))
    assert got["requests"] == [6, 6]  # the request prepared meanwhile never goes
    statuses = [s for s, _, _ in got["records"].values()]
    assert statuses.count("sent") == 6 and statuses.count("retry") == ITEMS - 6


def test_export_overlap_failed_items_in_a_request_leave_the_next_ones_going():
    got = same_as_serial(lambda: Scripted(size=6, script={3: ItemOutcome("failed", "bad")}))
    assert got["requests"] == [6, 6, 6, 6, 6, 6, 4]
    assert sum(p[1]["failed"] for p in got["parts"]) == 6


def test_export_overlap_an_auth_error_on_a_request_ends_the_export_as_sending_in_turn():
    got = same_as_serial(lambda: Scripted(size=6, script={2: AuthError("HTTP 401")}))
    assert got["error"] == "AuthError: HTTP 401" and got["requests"] == [6, 6]
    statuses = [s for s, _, _ in got["records"].values()]
    assert statuses.count("sent") == 6 and statuses.count("pending") == ITEMS - 6
    assert any(p[3] == "AuthError: HTTP 401" for p in got["parts"])


def test_export_overlap_a_crash_on_a_request_resends_only_that_request_on_redelivery():
    got = same_as_serial(lambda: Scripted(size=6, script={3: RuntimeError("the sink died")}))
    assert got["error"] == "RuntimeError: the sink died"
    w, message = got["world"], got["message"]
    first = {k for c in got["calls"] for k in c}
    assert len(first) == 12  # the two requests answered before it are recorded
    w.sink.script = {}
    w.sink.calls.clear()
    export_part(message, ExportDeps(state=w.state, blobs=w.blobs, sink=w.sink, clock=w.clock))
    again = [k for c in w.sink.calls for k in c]
    assert len(again) == len(set(again)) == ITEMS - 12 and not set(again) & first


def test_export_overlap_the_budget_running_out_hands_back_what_sending_in_turn_would():
    handed: list[ExportMessage] = []

    def budgeted(overlap: bool) -> dict[str, Any]:
        sink = Scripted(size=6, seconds=30)  # 30 s a request: two fit in 100 s
        budget = Budget(100, clock=sink.ticks, reserve=10)
        return run(overlap, sink, budget=budget, handback=handed.append)

    serial, overlapped = budgeted(False), budgeted(True)
    for name in ("requests", "calls", "records", "parts", "counts", "handed_back"):
        assert overlapped[name] == serial[name], name
    assert overlapped["requests"] == [6, 6] and handed[0] == handed[1]
    # the handed-back message sends the rest, nothing twice
    w = overlapped["world"]
    w.sink.calls.clear()
    export_part(handed[1], ExportDeps(state=w.state, blobs=w.blobs, sink=w.sink, clock=w.clock))
    again = [k for c in w.sink.calls for k in c]
    first = {k for c in overlapped["calls"] for k in c}
    assert len(again) == len(set(again)) == ITEMS - 12 and not set(again) & first


class FailingOpen:
    """Blobs whose `open` fails from the `nth` call on (reading the snapshot parts)."""

    def __init__(self, blobs: Any, nth: int) -> None:
        self.blobs, self.nth, self.opened = blobs, nth, 0

    def open(self, key: str) -> Any:
        self.opened += 1
        if self.opened >= self.nth:
            raise RetryableError(f"cannot read {key}")
        return self.blobs.open(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.blobs, name)


def test_export_overlap_an_error_reading_the_next_request_comes_after_the_request_out_is_recorded():
    outcomes = []
    for overlap in (False, True):
        sink = Scripted(size=2)  # a request of the first bucket's items, then the next
        w, messages = world(sink)
        blobs = FailingOpen(w.blobs, nth=2)
        deps = ExportDeps(state=w.state, blobs=blobs, sink=sink, clock=w.clock, overlap=overlap)
        with pytest.raises(RetryableError, match="cannot read"):
            export_part(messages[0], deps)
        records = w.state.all_records("toy")
        sent = sorted(k for k, r in records.items() if r.status == "sent")
        outcomes.append((list(sink.requests), sent))
    assert outcomes[0] == outcomes[1]
    requests, sent = outcomes[1]
    assert requests and len(sent) == sum(requests)  # what went out is recorded


@dataclass
class Watching(Scripted):
    """Waits, in its first send, until the export reads the next request's items."""

    read_ahead: threading.Event = field(default_factory=threading.Event)
    saw: list[bool] = field(default_factory=list)

    def batches(self, feed: str, items: Iterable[OutgoingItem]) -> Iterator[list[OutgoingItem]]:
        for n, batch in enumerate(super().batches(feed, items)):
            if n == 1:
                self.read_ahead.set()
            yield batch

    def send(self, feed: str, items: Sequence[OutgoingItem]) -> list[ItemOutcome]:
        if not self.saw:
            self.saw.append(self.read_ahead.wait(timeout=30))
        return super().send(feed, items)


def test_export_overlap_the_next_request_is_prepared_while_one_is_out():
    sink = Watching(size=6)
    got = run(True, sink)
    assert sink.saw == [True]  # the second batch was cut while the first was out
    assert got["requests"] == [6, 6, 6, 6, 6, 6, 4] and got["error"] is None
    assert all(name.startswith("export-send") for name in sink.threads)


@dataclass
class Paced(Scripted):
    """A paced sink (ACO's pacer): its sends stay in the export's thread."""

    def take_paced(self) -> float | None:
        return None


def test_export_overlap_a_paced_sink_sends_in_the_exports_thread():
    sink = Paced(size=6)
    got = run(True, sink)
    assert got["requests"] == [6, 6, 6, 6, 6, 6, 4]
    assert set(sink.threads) == {threading.current_thread().name}


class SlowRecord:
    """A state whose journal write (`record_outcomes`) of the first request waits until
    the second request is out, or fails from the `fail_at`th call on."""

    def __init__(self, state: Any, sink: Scripted, fail_at: int = 0) -> None:
        self.state, self.sink, self.fail_at = state, sink, fail_at
        self.calls = 0
        self.saw: list[bool] = []

    def record_outcomes(self, *args: Any, **kw: Any) -> Any:
        self.calls += 1
        if self.calls == 1 and not self.fail_at:
            self.saw.append(self.sink.second.wait(timeout=30))
        if self.fail_at and self.calls >= self.fail_at:
            raise RetryableError("the table is gone")
        return self.state.record_outcomes(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.state, name)


@dataclass
class Noting(Scripted):
    """Notes when its second request goes out."""

    second: threading.Event = field(default_factory=threading.Event)

    def send(self, feed: str, items: Sequence[OutgoingItem]) -> list[ItemOutcome]:
        if len(self.requests) == 1:
            self.second.set()
        return super().send(feed, items)


def test_export_overlap_a_request_is_recorded_while_the_next_one_is_out():
    sink = Noting(size=6)
    w, messages = world(sink)
    state = SlowRecord(w.state, sink)
    deps = ExportDeps(state=state, blobs=w.blobs, sink=sink, clock=w.clock)  # type: ignore[arg-type]
    result = export_part(messages[0], deps)
    assert state.saw == [True]  # the first request's record waited for the second to go
    assert sink.requests == [6, 6, 6, 6, 6, 6, 4] and result.counts["sent"] == ITEMS
    records = w.state.all_records("toy")
    assert {r.status for r in records.values()} == {"sent"} and len(records) == ITEMS


def test_export_overlap_a_crash_in_a_record_resends_that_request_and_the_one_out_only(
    caplog: pytest.LogCaptureFixture,
):
    sink = Noting(size=6)
    w, messages = world(sink)
    state = SlowRecord(w.state, sink, fail_at=3)  # the third request's record fails
    deps = ExportDeps(state=state, blobs=w.blobs, sink=sink, clock=w.clock)  # type: ignore[arg-type]
    with pytest.raises(RetryableError, match="the table is gone"):
        export_part(messages[0], deps)
    assert sink.requests == [6, 6, 6, 6]  # the fourth was out while the third was recorded
    assert "the next one's answer (accepted) is not recorded, its 6 items" in caplog.text
    first = [k for c in sink.calls for k in c]
    recorded = {k for k, r in w.state.all_records("toy").items() if r.status == "sent"}
    # the two requests recorded before the failure, some of the third (a bucket it
    # finished is written before its journal entries), none of the fourth
    assert set(first[:12]) <= recorded <= set(first[:18])
    sink.calls.clear()
    export_part(messages[0], ExportDeps(state=w.state, blobs=w.blobs, sink=sink, clock=w.clock))
    again = [k for c in sink.calls for k in c]
    assert len(again) == len(set(again)) == ITEMS - len(recorded)
    assert not set(again) & recorded  # nothing recorded is sent again
    assert set(first[12:]) - recorded <= set(again)  # the rest of the third, the fourth
    records = w.state.all_records("toy")
    assert {r.status for r in records.values()} == {"sent"} and len(records) == ITEMS


def test_export_overlap_a_record_failing_while_the_next_request_meets_an_auth_error():
    """The record's error is what the export raises; the request out, refused, is
    waited for and not recorded: its items stay pending, nothing is marked failed."""
    sink = Noting(size=6, script={4: AuthError("HTTP 401")})
    w, messages = world(sink)
    state = SlowRecord(w.state, sink, fail_at=3)
    deps = ExportDeps(state=state, blobs=w.blobs, sink=sink, clock=w.clock)  # type: ignore[arg-type]
    with pytest.raises(RetryableError, match="the table is gone"):
        export_part(messages[0], deps)
    assert sink.requests == [6, 6, 6, 6]
    records = w.state.all_records("toy")
    assert {r.status for r in records.values()} <= {"sent", "pending"}
    assert sum(r.status == "sent" for r in records.values()) >= 12
