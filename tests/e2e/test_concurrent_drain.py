"""The local runner's concurrent export (`drain(concurrency=N)`,
`LOCAL_EXPORT_CONCURRENCY`): N consumer processes take the messages as N Lambda
instances would, and the result is the serial drain's: the same state, the same
items at the receiver, nothing sent twice. A consumer's error is raised in the
caller. Over HTTP: the moto server and the feed receiver run in this process, the
consumers reach them from theirs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from catalog_sync.errors import AuthError, ConfigError
from devstack import synth
from devstack.local import LocalRunner, export_concurrency
from tests.e2e.faults import state_records

PRODUCTS = 120
# several messages (of a few buckets each) of several requests each
ENV = {"STATE_BUCKETS": "16", "SAAS_MAX_ITEMS": "5", "EXPORT_MESSAGE_ITEMS": "12"}


def _outcome(stack) -> tuple[dict, dict]:  # stack: tests.e2e.conftest.Stack
    records = {
        k: (r.hash, r.deleted, r.status.value, r.sent_hash)
        for k, r in state_records(stack.runner.app).items()
    }
    # what the receiver holds, but the time each run compiled it at
    held = {k: {f: v for f, v in i.items() if f != "modifiedAt"} for k, i in stack.held().items()}
    return records, held


def test_e2e_a_concurrent_drain_ends_where_the_serial_one_does(make_stack, tmp_path: Path) -> None:
    v1, v2 = tmp_path / "v1.csv", tmp_path / "v2.csv"
    synth.generate(v1, PRODUCTS, seed=21, store_views=())
    synth.edit(v1, v2, change_prices=30, remove=6, add=8, seed=4, only_standalone=False)
    serial_src, concurrent_src = tmp_path / "a.csv", tmp_path / "b.csv"
    serial = make_stack(serial_src, **ENV, FEEDS="products")
    concurrent = make_stack(concurrent_src, **ENV, FEEDS="products")

    for version in (v1, v2):  # a first load, then changes, removals and additions
        shutil.copy(version, serial_src)
        shutil.copy(version, concurrent_src)
        a = serial.runner.reindex({"action": "sync"})
        b = concurrent.runner.reindex({"action": "sync"})
        messages = b["runs"][0]["messages_enqueued"]
        assert messages >= 3  # more messages than consumers: they share them out
        assert a["runs"][0]["messages_enqueued"] == messages

        one = serial.runner.drain()
        many = concurrent.runner.drain(concurrency=3)

        assert one.succeeded == many.succeeded == messages
        assert many.invocations == messages  # one message at a time per consumer
        assert many.failed_attempts == 0
        records, held = _outcome(concurrent)
        assert (records, held) == _outcome(serial)
        assert {s for _, _, s, _ in records.values()} == {"sent"}
        assert concurrent.receiver.stats()["items"]["duplicate"] == 0
    assert len(held) == PRODUCTS - 6 + 8  # the removals went out as deletions


def test_e2e_a_consumer_error_is_raised_by_the_concurrent_drain(make_stack, tmp_path: Path) -> None:
    """The consumers' receiver refuses the key (401): the export marks the parts with
    the AuthError and a consumer raises it; the drain raises it once all stopped."""
    catalog = tmp_path / "catalog.csv"
    synth.generate(catalog, 40, seed=2, store_views=())
    s = make_stack(catalog, **ENV, FEEDS="products")
    s.runner.reindex({"action": "sync"})
    s.receiver.api_key = "not-the-key-the-export-sends"  # the secret no longer works

    with pytest.raises(AuthError):
        s.runner.drain(concurrency=2)

    assert s.held() == {}  # nothing taken


def test_export_concurrency_comes_from_the_environment_and_refuses_nonsense(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOCAL_EXPORT_CONCURRENCY", raising=False)
    assert export_concurrency({}) == 1
    assert export_concurrency({"LOCAL_EXPORT_CONCURRENCY": "4"}) == 4
    monkeypatch.setenv("LOCAL_EXPORT_CONCURRENCY", "2")
    assert export_concurrency({}) == 2
    with pytest.raises(ConfigError, match=r"LOCAL_EXPORT_CONCURRENCY.*'two'"):
        export_concurrency({"LOCAL_EXPORT_CONCURRENCY": "two"})


def test_a_concurrent_drain_refuses_a_count_it_cannot_keep(make_stack, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.csv"
    synth.generate(catalog, 5, seed=2, store_views=())
    runner: LocalRunner = make_stack(catalog).runner
    with pytest.raises(ConfigError, match="1 or more"):
        runner.drain(concurrency=0)
    with pytest.raises(ConfigError, match="max_invocations"):
        runner.drain(concurrency=2, max_invocations=1)
