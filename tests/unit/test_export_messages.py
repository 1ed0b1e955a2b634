"""Export messages over in-memory fakes (the toy feed): the reindex packs buckets into
messages, the export fills each request across them, records after each request,
stops sending on a give-up, and hands unfinished buckets back when its budget is out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from catalog_sync.ports import ItemOutcome, OutgoingItem, batches_of
from catalog_sync.sync import export as export_module
from catalog_sync.sync.export import Budget, ExportDeps, export_part
from catalog_sync.sync.reindex import ReindexDeps, ReindexRequest, reindex_feed
from catalog_sync.sync.runs import KeyRange, PartResult
from catalog_sync.sync.snapshot import ExportMessage, export_units, pack_messages
from catalog_sync.sync.state import Status
from tests.fakes import ListSource, ScriptedSink
from tests.unit.test_sync_usecases import VIEWS, World, catalog

ITEMS = 40  # catalog(20) in two store views, over 8 buckets


def test_pack_messages_fills_each_up_to_the_capacity_in_bucket_order():
    pending = {5: 10, 0: 3, 1: 4, 2: 2, 6: 1, 7: 0}
    messages = pack_messages("toy", "r1", "m", pending, capacity=8)
    assert [m.buckets for m in messages] == [[0, 1], [2], [5], [6, 7]]  # 5 is alone: too large
    assert {m.feed for m in messages} == {"toy"} and {m.manifest_key for m in messages} == {"m"}


@dataclass
class Batching(ScriptedSink):
    """ScriptedSink that cuts requests at `size` items, and raises at call `crash_at`."""

    size: int = 6
    crash_at: int | None = None
    outcome: ItemOutcome | None = None  # every item gets this (None: as ScriptedSink)
    requests: list[int] = field(default_factory=list)

    def batches(self, feed: str, items: Iterable[OutgoingItem]) -> Iterator[list[OutgoingItem]]:
        return batches_of(items, self.size)

    def send(self, feed: str, items: Sequence[OutgoingItem]) -> list[ItemOutcome]:
        self.requests.append(len(items))
        if len(self.requests) == self.crash_at:
            raise RuntimeError("the sink died mid-export")
        if self.outcome is not None:
            self.calls.append([i.key for i in items])
            return [self.outcome] * len(items)
        return super().send(feed, items)


def world(sink: Batching) -> tuple[World, list[ExportMessage]]:
    w = World()
    w.sink = sink
    w.reindex(catalog(20))
    messages = w.queue.drain()
    return w, messages


def export(w: World, message: ExportMessage, **kw):
    deps = ExportDeps(state=w.state, blobs=w.blobs, sink=w.sink, clock=w.clock, **kw)
    return export_part(message, deps)


def test_export_fills_each_request_across_the_buckets_of_a_message():
    w, messages = world(Batching(size=6))
    assert len(messages) == 1 and len(messages[0].buckets) > 5  # the buckets with items
    result = export(w, messages[0])
    assert w.sink.requests == [6, 6, 6, 6, 6, 6, 4]  # ceil(40 / 6), not one per bucket
    assert result.requests == 7 and result.counts["sent"] == ITEMS
    parts = w.state.list_part_results("toy", messages[0].run_id)
    assert sorted(p.bucket for p in parts) == messages[0].buckets
    assert sum(p.counts["sent"] for p in parts) == ITEMS


def test_export_a_crash_on_a_request_finds_the_requests_answered_before_it_recorded():
    w, messages = world(Batching(size=6, crash_at=3))
    with pytest.raises(RuntimeError, match="died"):
        export(w, messages[0])
    records = w.state.all_records("toy")
    sent = {k for k, r in records.items() if r.status is Status.SENT}
    assert sent == set(w.sink.calls[0] + w.sink.calls[1])  # the two answered requests
    w.sink.crash_at = None
    w.sink.calls.clear()
    export(w, messages[0])  # SQS delivers the message again
    again = [k for call in w.sink.calls for k in call]
    assert len(again) == ITEMS - 12 and not set(again) & sent  # nothing recorded is resent
    assert {r.status for r in w.state.all_records("toy").values()} == {Status.SENT}


def test_export_after_a_give_up_leaves_the_rest_to_retry_without_sending_it():
    w, messages = world(Batching(size=6, outcome=ItemOutcome("retry", "HTTP 503 after 5 tries")))
    result = export(w, messages[0])
    assert w.sink.requests == [6]  # a down API does not eat the invocation
    assert result.counts["retry"] == ITEMS
    records = w.state.all_records("toy").values()
    assert {(r.status, r.reason) for r in records} == {(Status.RETRY, "HTTP 503 after 5 tries")}


class Ticks:
    """A monotonic clock the sink moves: each request takes 30 s."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_export_with_its_budget_used_up_hands_the_unfinished_buckets_back():
    ticks = Ticks()
    sink = Batching(size=6)
    w, messages = world(sink)
    real_send = sink.send

    def slow_send(feed, items):
        ticks.now += 30
        return real_send(feed, items)

    sink.send = slow_send  # type: ignore[method-assign]
    handed: list[ExportMessage] = []
    budget = Budget(100, clock=ticks.__call__, reserve=10)

    first = export(w, messages[0], budget=budget, handback=handed.append)

    # 30 s a request: after two, 40 s are left, under twice the slowest request
    assert sink.requests == [6, 6] and first.handed_back == handed[0]
    follow = handed[0]
    done = {p.bucket for p in first.parts}
    assert follow.buckets == [b for b in messages[0].buckets if b not in done]
    assert follow.handbacks == 1 and sum(c["sent"] for c in follow.carried.values()) > 0
    records = w.state.all_records("toy")
    assert sum(r.status is Status.SENT for r in records.values()) == 12  # recorded stays

    second = export(w, follow, budget=Budget(1000, clock=ticks.__call__), handback=handed.append)

    assert second.handed_back is None and len(handed) == 1
    assert sum(sink.requests) == ITEMS  # nothing sent twice
    parts = w.state.list_part_results("toy", follow.run_id)
    assert sorted(p.bucket for p in parts) == messages[0].buckets
    assert sum(p.counts["sent"] for p in parts) == ITEMS  # carried counts counted once


def test_export_reads_a_single_bucket_message_of_the_earlier_format():
    w, messages = world(Batching(size=100))
    bucket = messages[0].buckets[2]
    old = ExportMessage.model_validate(
        {
            "feed": "toy",
            "run_id": messages[0].run_id,
            "bucket": bucket,
            "part_key": None,
            "manifest_key": messages[0].manifest_key,
        }
    )
    result = export(w, old)
    assert [p.bucket for p in result.parts] == [bucket]
    pending = w.state.all_records("toy")
    assert sum(r.status is Status.SENT for r in pending.values()) == result.counts["sent"] > 0


def test_pack_messages_cuts_a_bucket_that_does_not_fit_at_the_capacity():
    pending = {0: 5, 1: 9, 2: 3, 3: 20}
    asked: list[tuple[int, list[int]]] = []

    def split(bucket: int, positions: list[int]) -> list[str]:
        asked.append((bucket, positions))
        return [f"k{p:02d}" for p in positions]

    messages = pack_messages("toy", "r1", "m", pending, capacity=8, split=split)
    # 5 + 3 of bucket 1 | 6 of bucket 1 + 2 of 2 | 1 of 2 + 7 of 3 | 8 of 3 | 5 of 3
    assert [m.buckets for m in messages] == [[0, 1], [1, 2], [2, 3], [3], [3]]
    assert asked == [(1, [3]), (2, [2]), (3, [7, 15])]
    cut = [{b: (r.index, r.low, r.high) for b, r in m.slices.items()} for m in messages]
    assert cut == [
        {1: (0, None, "k03")},
        {1: (1, "k03", None), 2: (0, None, "k02")},
        {2: (1, "k02", None), 3: (0, None, "k07")},
        {3: (1, "k07", "k15")},
        {3: (2, "k15", None)},
    ]
    assert export_units(messages) == 8  # 0, 1.0, 1.1, 2.0, 2.1, 3.0, 3.1, 3.2
    # a message that ends exactly full does not start the next with an empty slice
    exact = pack_messages("toy", "r1", "m", {0: 8, 1: 8}, capacity=8, split=split)
    assert [(m.buckets, m.slices) for m in exact] == [([0], {}), ([1], {})]


def _reindex_in_messages_of_12(w: World):
    """A reindex of catalog(20) over 8 buckets, in messages of 12 items: its run."""
    deps = ReindexDeps(
        state=w.state,
        blobs=w.blobs,
        queue=w.queue,
        clock=w.clock,
        new_id=w.ids,
        source=ListSource(catalog(20)),
        store_views=VIEWS,
        buckets=8,
        message_items=12,
    )
    return reindex_feed(ReindexRequest(feeds=("toy",)), deps)[0].run


def test_reindex_packs_messages_of_exactly_its_message_items_each_but_the_last():
    w = World()
    run = _reindex_in_messages_of_12(w)
    messages = w.queue.drain()
    assert run.messages_enqueued == len(messages) == -(-ITEMS // 12)
    units = [(b, m.slices[b].index if b in m.slices else 0) for m in messages for b in m.buckets]
    assert run.parts_enqueued == len(units) == len(set(units))  # each bucket or slice once
    assert [b for b, _ in units] == sorted(b for b, _ in units)
    records = w.state.all_records("toy")
    assert len(records) == ITEMS and all(r.status is Status.PENDING for r in records.values())
    carried = []
    for m in messages:  # the keys each message sends: its buckets' pending, its ranges
        keys = []
        for b in m.buckets:
            cut = m.slices.get(b)
            keys += [
                k for k in w.state.read_buckets("toy", [b])[0].pending() if not cut or cut.holds(k)
            ]
        carried.append(keys)
    assert [len(k) for k in carried] == [12, 12, 12, ITEMS - 36]
    assert sorted(k for keys in carried for k in keys) == sorted(records)  # each key once


def test_split_messages_send_each_item_once_in_full_requests():
    """Messages cut at 12 items, requests of 6: every request is full but the feed's
    last, whichever order the messages are handled in, and the parts of a cut bucket
    each get their result."""
    w = World()
    w.sink = sink = Batching(size=6)
    run = _reindex_in_messages_of_12(w)
    messages = w.queue.drain()
    assert any(m.slices for m in messages)
    parts = []
    for m in reversed(messages):  # the last first: a slice does not depend on the one before
        parts += export(w, m).parts
    assert sink.requests == [4, 6, 6, 6, 6, 6, 6]  # ceil(40 / 6) = 7, one partial
    sent = [k for call in sink.calls for k in call]
    assert sorted(sent) == sorted(w.state.all_records("toy")) and len(set(sent)) == ITEMS
    assert all(r.status is Status.SENT for r in w.state.all_records("toy").values())
    stored = w.state.list_part_results("toy", run.run_id)
    assert len(stored) == len(parts) == run.parts_enqueued
    assert sum(p.counts["sent"] for p in stored) == ITEMS
    assert len({p.unit for p in stored}) == len(stored)


def test_export_reads_each_bucket_state_once_when_nothing_conflicts():
    w, messages = world(Batching(size=6))
    reads: list[int] = []
    read = w.state.read_buckets

    def counting(feed, buckets):
        reads.extend(buckets)
        return read(feed, buckets)

    w.state.read_buckets = counting  # type: ignore[method-assign]
    w.state.read_waiting = counting  # type: ignore[method-assign]  # no index: whole views
    export(w, messages[0])
    assert sorted(reads) == messages[0].buckets  # outcomes go to the state as read
    assert {r.status for r in w.state.all_records("toy").values()} == {Status.SENT}


def test_export_reads_the_waiting_records_and_a_whole_bucket_only_to_write_it():
    """With an index of the waiting records (the fake keeps one for every bucket), the
    export reads that; a bucket it must write (small buckets: every one here) is read
    whole once, for the write, and the end state is the whole views' one."""
    w, messages = world(Batching(size=6))
    waiting, whole = [], []
    read_waiting, read_buckets = w.state.read_waiting, w.state.read_buckets

    def counting_waiting(feed, buckets):
        waiting.extend(buckets)
        return read_waiting(feed, buckets)

    def counting_whole(feed, buckets):
        whole.extend(buckets)
        return read_buckets(feed, buckets)

    w.state.read_waiting = counting_waiting  # type: ignore[method-assign]
    w.state.read_buckets = counting_whole  # type: ignore[method-assign]
    export(w, messages[0])
    w.state.read_buckets = read_buckets  # type: ignore[method-assign]
    assert sorted(waiting) == sorted(whole) == messages[0].buckets  # each once, of each kind
    assert {r.status for r in w.state.all_records("toy").values()} == {Status.SENT}
    parts = w.state.list_part_results("toy", messages[0].run_id)
    assert sum(p.counts["sent"] for p in parts) == ITEMS


def _reads_and_end_state(monkeypatch, held_records: int, stowed_bytes: int):
    monkeypatch.setattr(export_module, "HELD_RECORDS", held_records)
    monkeypatch.setattr(export_module, "STOWED_BYTES", stowed_bytes)
    w, messages = world(Batching(size=6))  # requests span buckets: journal entries
    reads: list[int] = []
    read = w.state.read_buckets

    def counting(feed, buckets):
        reads.extend(buckets)
        return read(feed, buckets)

    w.state.read_buckets = counting  # type: ignore[method-assign]
    w.state.read_waiting = counting  # type: ignore[method-assign]  # no index: whole views
    export(w, messages[0])
    w.state.read_buckets = read  # type: ignore[method-assign]
    buckets = w.state.read_buckets("toy", messages[0].buckets)
    end = [(b.bucket, b.version, b.records, b.part) for b in buckets]
    parts = sorted(
        (p.bucket, p.counts) for p in w.state.list_part_results("toy", messages[0].run_id)
    )
    return reads, end, parts, w.sink.calls, messages[0].buckets


def test_export_stows_the_states_it_cannot_hold_and_records_into_them_without_a_read(
    monkeypatch,
):
    """Past HELD_RECORDS a view is kept compressed, with the outcomes journaled for its
    bucket meanwhile applied when it is taken out: the same writes as holding it all,
    each state read once; with no room to stow, the views are read again (as before)."""
    held = _reads_and_end_state(monkeypatch, 10_000, 1 << 20)
    stowed = _reads_and_end_state(monkeypatch, 1, 1 << 20)
    dropped = _reads_and_end_state(monkeypatch, 1, 0)
    assert sorted(held[0]) == sorted(stowed[0]) == held[4]  # each bucket read once
    assert len(dropped[0]) > len(held[4])  # evicted views were read again
    for got in (stowed, dropped):
        assert got[1:4] == held[1:4]  # same state, versions, part results and requests
    assert {r.status for _, _, records, _ in held[1] for r in records.values()} == {Status.SENT}


def test_export_whose_sink_budget_runs_out_finishes_no_bucket_it_did_not_send():
    """A paced item was never offered: it stays pending, its bucket gets no part result
    (a dependent feed must not take this one as exported), and the unfinished buckets
    are handed back for the caller to queue when the budget frees."""
    sink = Batching(size=6)
    w, messages = world(sink)
    real_send = sink.send

    def budget_of_9(feed, items):
        left = max(0, 9 - sum(len(c) for c in sink.calls))
        outcomes = real_send(feed, items[:left]) if left else []
        sink.requests[-1] = len(items)
        return outcomes + [ItemOutcome("retry", "paced: the budget is used up")] * (
            len(items) - len(outcomes)
        )

    sink.send = budget_of_9  # type: ignore[method-assign]
    handed: list[ExportMessage] = []

    result = export(w, messages[0], handback=handed.append)

    assert result.paced and handed == []  # made, not queued: the caller knows when
    follow = result.handed_back
    assert follow is not None and sink.requests == [6, 6]  # no request after the pacing
    records = w.state.all_records("toy")
    sent = {k for k, r in records.items() if r.status is Status.SENT}
    assert len(sent) == 9 and result.counts["sent"] == 9
    assert {r.status for k, r in records.items() if k not in sent} == {Status.PENDING}
    finished = {p.bucket for p in w.state.list_part_results("toy", follow.run_id)}
    assert finished.isdisjoint(follow.buckets)
    assert set(follow.buckets) | finished == set(messages[0].buckets)
    for bucket in w.state.read_buckets("toy", sorted(finished)):  # all sent, each one
        assert {r.status for r in bucket.records.values()} == {Status.SENT}

    sink.send = real_send  # type: ignore[method-assign]
    second = export(w, follow, handback=handed.append)
    assert second.handed_back is None and second.counts["sent"] == ITEMS - 9
    assert {r.status for r in w.state.all_records("toy").values()} == {Status.SENT}
    parts = w.state.list_part_results("toy", follow.run_id)
    assert sorted(p.bucket for p in parts) == messages[0].buckets
    assert sum(p.counts["sent"] for p in parts) == ITEMS and not any(
        p.counts["retry"] for p in parts
    )


def test_a_slice_s_part_result_has_a_key_of_its_own_and_covers_its_keys_only():
    whole = PartResult(feed="toy", run_id="r1", bucket=7, finished_at="t")
    first = whole.model_copy(update={"slice": KeyRange(index=0, high="m")})
    second = whole.model_copy(update={"slice": KeyRange(index=1, low="m")})
    assert [p.sk for p in (whole, first, second)] == ["part#0007", "part#0007", "part#0007.01"]
    assert first.unit == (7, 0) and second.unit == (7, 1)
    assert whole.covers(7, "z") and not whole.covers(6, "z")
    assert first.covers(7, "a") and not first.covers(7, "m")  # high is exclusive
    assert second.covers(7, "m") and second.covers(7, "z") and not second.covers(7, "a")
    again = PartResult.model_validate_json(second.model_dump_json())
    assert again == second  # stored and read back with its range
