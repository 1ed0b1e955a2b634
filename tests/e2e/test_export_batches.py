"""The export fills each request across buckets, records every request's outcomes
before the next, and hands its work back to the queue when its time runs low:
counted at the real feed receiver (`/_stats`) and the ACO emulator, over HTTP, with
the moto stack and the real handlers.

The target (issue 11): k changed items cost at most ceil(k / batch size) + 1 requests
per feed, for both targets, where one request per bucket with a change cost up to one
request per bucket. The safety (issue 10): an export interrupted after a request
re-sends at most that request; a forced budget hands work back without losing or
re-sending anything recorded as sent.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from catalog_sync.sinks.aco import wire
from devstack import synth
from devstack.local import LocalRunner, LocalStack
from devstack.localaws import ResourceNames
from tests.e2e.faults import CrashPlan, install_crashes, state_records

PRODUCTS = 300
BATCH = 20


def _requests(receiver: Any) -> dict[str, int]:
    feeds = receiver.stats().get("feeds", {})
    return {f: s["requests"]["total"] for f, s in feeds.items()}


def _changed(run: dict[str, Any]) -> int:
    return sum(run["counts"].get(n, 0) for n in ("new", "changed", "deleted"))


def _catalogs(tmp_path: Path) -> tuple[Path, Path]:
    """v1 (PRODUCTS products) and v2: prices changed, products removed and added."""
    v1, v2 = tmp_path / "v1.csv", tmp_path / "v2.csv"
    synth.generate(v1, PRODUCTS, seed=5, store_views=())
    synth.edit(v1, v2, change_prices=70, remove=9, add=12, seed=3, only_standalone=False)
    return v1, v2


def test_export_k_changed_items_over_many_buckets_take_ceil_k_over_batch_requests(
    make_stack, tmp_path: Path
) -> None:
    v1, v2 = _catalogs(tmp_path)
    catalog = tmp_path / "catalog.csv"
    shutil.copy(v1, catalog)
    feeds = "products,prices,variants,inventoryStockStatus"
    s = make_stack(catalog, STATE_BUCKETS="64", SAAS_MAX_ITEMS=str(BATCH), FEEDS=feeds)
    s.sync()
    before = _requests(s.receiver)
    shutil.copy(v2, catalog)

    result = s.sync()

    after = _requests(s.receiver)
    checked = 0
    for run in result["runs"]:
        k = _changed(run)
        sent = after.get(run["feed"], 0) - before.get(run["feed"], 0)
        assert sent <= math.ceil(k / BATCH) + 1, (run["feed"], k, sent)
        if run["parts_enqueued"] > math.ceil(k / BATCH) + 1:
            checked += 1  # one request per bucket with a change would break the bound
        assert run["messages_enqueued"] == (1 if k else 0), run["feed"]
    assert checked >= 1, "the edit must touch more buckets than the bound allows requests"
    for feed in feeds.split(","):
        records = state_records(s.runner.app, feed)
        assert {r.status.value for r in records.values()} == {"sent"}, feed
    assert s.receiver.stats()["items"]["duplicate"] == 0  # nothing sent twice


def test_a_full_load_in_many_messages_takes_ceil_k_over_batch_requests(
    make_stack, tmp_path: Path
) -> None:
    """A first load split into messages of a multiple of the batch size: the reindex
    cuts the buckets that do not fit by key, so every message but the last ends with a
    full request, and the load takes ceil(k / batch) requests per feed (with buckets
    never cut, each message would end with a partial one)."""
    v1, _ = _catalogs(tmp_path)
    s = make_stack(
        v1,
        STATE_BUCKETS="16",
        SAAS_MAX_ITEMS=str(BATCH),
        EXPORT_MESSAGE_ITEMS=str(3 * BATCH),
        FEEDS="products,prices",
    )

    result = s.runner.reindex({"action": "sync"})
    s.runner.drain()

    after = _requests(s.receiver)
    for run in result["runs"]:
        k = _changed(run)
        assert run["messages_enqueued"] == math.ceil(k / (3 * BATCH)) >= 3, run["feed"]
        assert run["parts_enqueued"] > 16  # cut buckets: a part result per slice
        assert after[run["feed"]] == math.ceil(k / BATCH), run["feed"]
        parts = s.runner.app.state.list_part_results(run["feed"], run["run_id"])
        assert len(parts) == run["parts_enqueued"]
        assert sum(p.counts["sent"] for p in parts) == k
        records = state_records(s.runner.app, run["feed"])
        assert len(records) == k and {r.status.value for r in records.values()} == {"sent"}
    stats = s.receiver.stats()
    assert stats["items"]["duplicate"] == 0 and stats["items"]["received"] == sum(
        _changed(r) for r in result["runs"]
    )


def test_export_interrupted_after_a_request_resends_at_most_that_request(
    make_stack, tmp_path: Path
) -> None:
    v1, _ = _catalogs(tmp_path)
    s = make_stack(v1, STATE_BUCKETS="16", SAAS_MAX_ITEMS=str(BATCH), FEEDS="products")
    plan = install_crashes(s.runner.app, CrashPlan())
    # the 3rd request reaches the receiver; the export dies before recording it
    plan.arm("sink", 3, "after")

    result = s.runner.reindex({"action": "sync"})
    s.runner.drain()

    assert plan.fired == ["sink.send call 3, after"]
    items = result["runs"][0]["counts"]["new"]
    stats = s.receiver.stats()
    resent = stats["items"]["received"] - items
    assert 0 < resent <= BATCH  # one request again, not the whole message
    assert stats["items"]["duplicate"] == resent  # the same batch id: the receiver drops it
    assert stats["requests"]["total"] == math.ceil(items / BATCH) + 1
    records = state_records(s.runner.app, "products")
    assert len(records) == items and {r.status.value for r in records.values()} == {"sent"}
    assert len(s.held("products")) == items  # nothing lost


def _journal(state: Any, feed: str) -> list[str]:
    """The outcome journal entries of a feed, read from the table itself."""
    items = state.ddb.query(
        TableName=state.table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"outcomes#{feed}"}},
        ConsistentRead=True,
    )["Items"]
    return [i["sk"]["S"] for i in items]


def test_export_journals_a_bucket_s_outcomes_and_a_crash_resends_at_most_one_request(
    make_stack, tmp_path: Path
) -> None:
    """A bucket whose items span requests gets each request's outcomes as a small
    journal entry, not a rewrite of its whole state; a crash after a request reached
    the API and before its outcomes were recorded re-sends that request only, and the
    bucket's counts are right once it is finished (the journal folded in)."""
    v1, _ = _catalogs(tmp_path)
    s = make_stack(v1, STATE_BUCKETS="1", SAAS_MAX_ITEMS=str(BATCH), FEEDS="products")
    state = s.runner.app.state
    plan = install_crashes(s.runner.app, CrashPlan())
    seen: list[tuple[int, list[str]]] = []  # bucket writes and journal before each request
    plan.on_send = lambda feed, items: seen.append(
        (plan.calls.get("state", 0), _journal(state, feed))
    )
    plan.arm("sink", 4, "after")  # the 4th request reaches the receiver, then the crash

    result = s.runner.reindex({"action": "sync"})
    writes = plan.calls["state"]  # the diff's
    s.runner.drain()

    assert plan.fired == ["sink.send call 4, after"]
    # no bucket write, one journal entry per request answered: the request before the
    # one going out may still be being recorded as it goes
    assert [w - writes for w, _ in seen[:4]] == [0, 0, 0, 0]
    for n, (_, journal) in enumerate(seen[:4]):
        assert n - 1 <= len(journal) <= n, n
    items = result["runs"][0]["counts"]["new"]
    stats = s.receiver.stats()
    assert 0 < stats["items"]["received"] - items <= BATCH  # the 4th request again, only
    assert stats["requests"]["total"] == math.ceil(items / BATCH) + 1
    records = state_records(s.runner.app, "products")
    assert len(records) == items and {r.status.value for r in records.values()} == {"sent"}
    assert state.read_counts("products", [0])[0].counts["sent"] == items  # folded
    assert _journal(state, "products") == []  # and cleaned up


def test_an_hourly_export_journals_its_few_outcomes_instead_of_rewriting_buckets(
    make_stack, tmp_path: Path
) -> None:
    """A few items sent out of large buckets: the export reads the index of the
    waiting records, not the buckets' whole state, and writes small journal entries
    with their counts deltas, not the whole state either; the status counts read
    beside the buckets are right at once, the records too, and the next write of a
    bucket folds its entries in."""
    v1, _ = _catalogs(tmp_path)
    v2, v3 = tmp_path / "v2-small.csv", tmp_path / "v3-small.csv"
    synth.edit(v1, v2, change_prices=0, remove=2, add=3, seed=8, only_standalone=True)
    synth.edit(v2, v3, change_prices=0, remove=1, add=2, seed=9, only_standalone=True)
    catalog = tmp_path / "catalog.csv"
    shutil.copy(v1, catalog)
    s = make_stack(catalog, STATE_BUCKETS="2", SAAS_MAX_ITEMS=str(BATCH), FEEDS="products")
    s.sync()
    state = s.runner.app.state
    shutil.copy(v2, catalog)
    plan = install_crashes(s.runner.app, CrashPlan())  # counts the bucket writes

    result = s.runner.reindex({"action": "sync"})
    writes = plan.calls.get("state", 0)
    whole_reads: list[list[int]] = []
    real_read = state.read_buckets
    state.read_buckets = lambda feed, numbers: (
        whole_reads.append(list(numbers)) or real_read(feed, numbers)
    )
    s.runner.drain()
    del state.read_buckets

    assert 0 < _changed(result["runs"][0]) < 20
    assert plan.calls.get("state", 0) == writes  # the export rewrote no bucket
    assert whole_reads == []  # nor read one: the index of the waiting records did
    assert _journal(state, "products")  # its outcomes are in the journal
    records = state_records(s.runner.app, "products")
    assert {r.status.value for r in records.values()} == {"sent"}
    counts = state.read_counts("products", [0, 1])
    for number, bucket in zip((0, 1), state.read_buckets("products", [0, 1]), strict=True):
        assert counts[number].counts == bucket.counts()  # the deltas added, as the records
        assert counts[number].counts["pending"] == 0
    assert s.receiver.stats()["items"]["duplicate"] == 0
    assert len(s.held("products")) == sum(not r.deleted for r in records.values())

    entries = set(_journal(state, "products"))
    versions = {b.bucket: b.version for b in state.read_buckets("products", [0, 1])}
    shutil.copy(v3, catalog)
    s.runner.reindex({"action": "sync"})  # its diff writes the buckets it changes
    rewritten = {
        b.bucket for b in state.read_buckets("products", [0, 1]) if b.version != versions[b.bucket]
    }
    assert rewritten  # and folds their entries in: gone; the others' stay
    left = entries & set(_journal(state, "products"))
    assert {int(e[:4]) for e in left} == {int(e[:4]) for e in entries} - rewritten
    s.runner.drain()
    again = state.read_counts("products", [0, 1])
    for number, bucket in zip((0, 1), state.read_buckets("products", [0, 1]), strict=True):
        assert again[number].counts == bucket.counts()
    assert {r.status.value for r in state_records(s.runner.app, "products").values()} == {"sent"}


def test_export_with_its_time_used_up_hands_the_rest_back_and_sends_nothing_twice(
    make_stack, tmp_path: Path
) -> None:
    v1, _ = _catalogs(tmp_path)
    s = make_stack(
        v1,
        STATE_BUCKETS="16",
        SAAS_MAX_ITEMS=str(BATCH),
        FEEDS="products",
        RUN_TIME_BUDGET_SECONDS="0",  # each invocation: one request, then hand back
    )

    result = s.runner.reindex({"action": "sync"})
    drained = s.runner.drain()

    run = result["runs"][0]
    items = run["counts"]["new"]
    requests = math.ceil(items / BATCH)
    assert run["messages_enqueued"] == 1
    assert drained.succeeded >= requests  # the one message came back requests - 1 times
    stats = s.receiver.stats()
    assert stats["requests"]["total"] == requests  # as many as without a budget
    assert stats["items"]["received"] == items  # nothing sent twice
    records = state_records(s.runner.app, "products")
    assert {r.status.value for r in records.values()} == {"sent"}
    assert len(s.held("products")) == items
    parts = s.runner.app.state.list_part_results("products", run["run_id"])
    assert len(parts) == run["parts_enqueued"]  # every bucket finished, once
    assert sum(p.counts["sent"] for p in parts) == items  # counts carried across hand-backs


def _aco_requests(emulator: Any) -> dict[tuple[str, bool], int]:
    """Requests the emulator accepted, by (entity name, is a delete)."""
    out: dict[tuple[str, bool], int] = {}
    for r in emulator.requests:
        for ent in wire.ENTITIES.values():
            for path, delete in ((ent.upsert_path, False), (ent.delete_path, True)):
                if r["path"].endswith(path) and r["status"] == 200:
                    out[(ent.name, delete)] = out.get((ent.name, delete), 0) + 1
    return out


def test_export_aco_k_changed_items_take_ceil_k_over_batch_requests(
    moto_endpoint: str, tmp_path: Path
) -> None:
    v1, v2 = _catalogs(tmp_path)
    catalog = tmp_path / "catalog.csv"
    shutil.copy(v1, catalog)
    stack = LocalStack(
        aws_endpoint=moto_endpoint, names=ResourceNames.unique(), source=str(catalog), target="aco"
    ).start()
    try:
        env = {
            **stack.env,
            "STATE_BUCKETS": "64",
            "ACO_BATCH_SIZE": str(BATCH),
            "ACO_PRICE_BATCH_SIZE": str(BATCH),
            "ACO_MAX_REQUESTS_PER_SECOND": "50",
            "EXPORT_REQUEUE_DELAY_SECONDS": "0",
        }
        runner = LocalRunner(env)
        runner.reindex({"action": "sync"})
        runner.drain()
        before = _aco_requests(stack.aco)
        shutil.copy(v2, catalog)

        result = runner.reindex({"action": "sync"})
        runner.drain()

        after = _aco_requests(stack.aco)
        checked = 0
        for run in result["runs"]:
            ent = wire.entity(run["feed"]).name
            sent = sum(after.get((ent, d), 0) - before.get((ent, d), 0) for d in (False, True))
            k = _changed(run)
            assert sent <= math.ceil(k / BATCH) + 1, (run["feed"], k, sent)
            checked += run["parts_enqueued"] > math.ceil(k / BATCH) + 1
        assert checked >= 1
        assert {str(k) for k in stack.aco.stats()["statuses"]} == {"200"}
        for feed in ("acoProducts", "acoPrices"):
            records = state_records(runner.app, feed)
            assert {r.status.value for r in records.values()} == {"sent"}, feed
    finally:
        stack.stop()
