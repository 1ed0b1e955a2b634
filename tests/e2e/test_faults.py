"""Never lose an update under faults: each fault of the feed API, over real HTTP
(moto server + the local receiver), during a sync that changes, adds and deletes
products. At the end the receiver holds exactly the catalog: SKUs and prices read
with `csv` from the file, full content equal to a fault-free run on a second stack.

`pytest -s` prints a table: runs, items lost and false deletions per fault kind.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog_sync.errors import AuthError
from catalogctl.status import collect_status
from devstack import synth
from tests.e2e.faults import (
    catalog_prices,
    key_of,
    record_sleeps,
    sent_but_not_held,
    state_records,
    without_modified_at,
)

PRODUCTS = 120


def rename(path: Path, sku: str, name: str) -> None:
    """Change the name on the global row of `sku` (read and written with `csv`)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    sku_i, view_i, name_i = (header.index(c) for c in ("sku", "store_view_code", "name"))
    hits = [r for r in rows[1:] if r[sku_i] == sku and not r[view_i]]
    assert len(hits) == 1
    hits[0][name_i] = name
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.writelines(synth.format_row(r) for r in rows)


_TABLE: list[dict[str, Any]] = []


@pytest.fixture(scope="module", autouse=True)
def _print_table() -> Iterator[None]:
    yield
    if not _TABLE:
        return
    print("\n\nfault kind        runs  items  lost  false deletions")
    for row in _TABLE:
        print(
            f"{row['fault']:<17} {row['runs']:>4}  {row['items']:>5}  {row['lost']:>4}  "
            f"{row['false_deletions']:>15}"
        )


class Scenario:
    """A stack synced once with catalog v1, then v1 edited into v2 (prices changed,
    products removed and added), ready for a fault and a sync."""

    def __init__(self, make_stack: Any, tmp_path: Path, **stack_args: Any) -> None:
        self.tmp = tmp_path
        self.catalog = tmp_path / "catalog.csv"
        synth.generate(self.catalog, PRODUCTS, seed=11, store_views=())
        self.s = make_stack(self.catalog, **stack_args)
        self.make_stack = make_stack
        self.runs = 0
        self.sync()
        assert set(self.held_prices()) == set(catalog_prices(self.catalog))
        edited = tmp_path / "v2.csv"
        self.change = synth.edit(self.catalog, edited, change_prices=6, remove=5, add=3, seed=12)
        shutil.copy(edited, self.catalog)
        self.before = self.s.receiver.stats()

    def sync(self) -> dict[str, Any]:
        self.runs += 1
        result: dict[str, Any] = self.s.sync()
        return result

    def held_prices(self) -> dict[str, float | None]:
        return {sku: item["price"]["regular"] for (sku, _), item in self.s.held().items()}

    def delta(self, *path: str) -> int:
        now: Any = self.s.receiver.stats()
        then: Any = self.before
        for p in path:
            now, then = (
                now.get(p, 0) if isinstance(now, dict) else 0,
                (then.get(p, 0) if isinstance(then, dict) else 0),
            )
        return int(now) - int(then)

    def check_converged(self, fault: str) -> None:
        """The receiver holds exactly the catalog; the state claims nothing it lacks."""
        expected = catalog_prices(self.catalog)
        held = self.s.held()
        prices = self.held_prices()
        lost = sorted(
            sku
            for sku, price in expected.items()
            if sku not in prices or (price is not None and prices[sku] != price)
        )
        records = state_records(self.s.runner.app)
        false_deletions = sorted(
            k for k, r in records.items() if r.deleted and k.split("\x1f")[0] in expected
        )
        _TABLE.append(
            {
                "fault": fault,
                "runs": self.runs,
                "items": len(expected),
                "lost": len(lost),
                "false_deletions": len(false_deletions),
            }
        )
        assert lost == []
        assert false_deletions == []
        assert set(prices) == set(expected)  # nothing extra (deletions arrived)
        for sku in self.change.removed:
            assert records[key_of(sku)].deleted
        assert sent_but_not_held(records, held) == []
        assert all(r.status.value == "sent" for r in records.values())
        # full content: the same as a fault-free run of the same catalog
        clean = self.make_stack(self.catalog)
        clean.sync()
        assert without_modified_at(held) == without_modified_at(clean.held())


def test_faults_503_twice_is_retried_and_all_sent(make_stack, tmp_path: Path):
    sc = Scenario(make_stack, tmp_path)
    sc.s.receiver.add_fault({"status": 503, "times": 2})

    sc.sync()

    assert sc.delta("requests", "503") == 2
    sc.check_converged("503 x2")


def test_faults_429_retry_after_is_honoured_and_all_sent(make_stack, tmp_path: Path):
    sc = Scenario(make_stack, tmp_path)
    sleeps = record_sleeps(sc.s.runner.app)
    sc.s.receiver.add_fault({"status": 429, "times": 1, "retry_after": 1})

    sc.sync()

    assert sc.delta("requests", "429") == 1
    assert sleeps == [1.0]  # waited what the API asked, not its own backoff
    sc.check_converged("429 Retry-After")


def test_faults_dropped_connection_is_retried_and_all_sent(make_stack, tmp_path: Path):
    sc = Scenario(make_stack, tmp_path)
    sc.s.receiver.add_fault({"drop_connection": 1})

    sc.sync()

    assert sc.delta("requests", "dropped") == 1
    sc.check_converged("dropped conn")


def test_faults_invalid_item_fails_alone_and_waits_for_a_change(make_stack, tmp_path: Path):
    sc = Scenario(make_stack, tmp_path)
    bad = sc.change.changed[0]
    sc.s.receiver.add_fault({"reject": {"sku": [bad]}})

    sc.sync()

    status = collect_status(sc.s.runner.app.state, "products")
    failed = {f["item"]: f for f in status["failed_items"]}
    assert list(failed) == [f"{bad} / default"]
    assert failed[f"{bad} / default"]["status"] == "failed"
    assert "rejected by the fault plan" in failed[f"{bad} / default"]["reason"]
    assert f"sku={bad}" in failed[f"{bad} / default"]["reason"]
    expected = catalog_prices(sc.catalog)
    prices = sc.held_prices()
    assert prices[bad] != expected[bad]  # the receiver keeps the old version
    assert {s: p for s, p in prices.items() if s != bad} == {
        s: p for s, p in expected.items() if s != bad
    }
    # a further sync does not resend it, even with the reject gone
    sc.s.receiver.clear_faults()
    received = sc.s.receiver.stats()["items"]["received"]
    result = sc.sync()
    assert sc.s.receiver.stats()["items"]["received"] == received
    assert result["runs"][0]["parts_enqueued"] == 0
    # its content changes: it is sent
    rename(sc.catalog, bad, "Renamed after the reject")

    sc.sync()

    assert sc.s.held()[(bad, "default")]["name"] == "Renamed after the reject"
    sc.check_converged("invalid item")


def test_faults_oversize_batch_is_split_and_all_sent(make_stack, tmp_path: Path):
    sc = Scenario(make_stack, tmp_path, receiver_max_items=3)
    # the first sync already went through 413s; the edit sync too
    assert sc.before["requests"].get("413", 0) > 0

    sc.sync()

    sc.check_converged("413 split")


def test_faults_503_forever_leaves_items_to_retry_and_marks_nothing_sent(
    make_stack, tmp_path: Path
):
    sc = Scenario(make_stack, tmp_path, SAAS_MAX_TRIES="2")
    sleeps = record_sleeps(sc.s.runner.app, cap=0.01)
    sc.s.receiver.add_fault({"status": 503, "times": 10_000})
    held_before = sc.s.held()

    sc.sync()

    assert sleeps  # it did back off
    assert sc.s.held() == held_before
    records = state_records(sc.s.runner.app)
    assert sent_but_not_held(records, sc.s.held()) == []
    touched = [*sc.change.changed, *sc.change.removed, *sc.change.added]
    assert {records[key_of(s)].status.value for s in touched} == {"retry"}
    status = collect_status(sc.s.runner.app.state, "products")
    assert all("503" in (f["reason"] or "") for f in status["failed_items"])

    sc.s.receiver.clear_faults()
    sc.sync()

    sc.check_converged("503 forever")


def test_faults_wrong_api_key_raises_auth_error_and_marks_nothing_sent(make_stack, tmp_path: Path):
    sc = Scenario(make_stack, tmp_path)
    right_key = sc.s.receiver.api_key
    sc.s.receiver.api_key = "another-key-entirely-0000"
    held_before = sc.s.held()

    sc.runs += 1
    sc.s.runner.reindex({"action": "sync"})
    with pytest.raises(AuthError):
        sc.s.runner.drain()

    assert sc.s.held() == held_before
    records = state_records(sc.s.runner.app)
    assert sent_but_not_held(records, sc.s.held()) == []
    touched = [*sc.change.changed, *sc.change.removed, *sc.change.added]
    assert {records[key_of(s)].status.value for s in touched} == {"pending"}

    sc.s.receiver.api_key = right_key
    sc.sync()

    sc.check_converged("403 wrong key")


def test_faults_401_status_raises_auth_error_and_marks_nothing_sent(make_stack, tmp_path: Path):
    sc = Scenario(make_stack, tmp_path)
    sc.s.receiver.add_fault({"status": 401, "times": 1})

    sc.runs += 1
    sc.s.runner.reindex({"action": "sync"})
    with pytest.raises(AuthError):
        sc.s.runner.drain()

    # the other parts of that SQS batch went through; the refused one is not sent
    assert sent_but_not_held(state_records(sc.s.runner.app), sc.s.held()) == []

    sc.sync()

    sc.check_converged("401")
