"""The mass-deletion guard on the local stack (moto over HTTP, the real handlers, the
real receiver or ACO emulator), both targets: after a full sync of a Luma-like
catalog, a header-only export deletes nothing at the SaaS side, the runs are held and
`catalogctl status` says so and how to release them; `--confirm-deletions` does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from catalogctl.status import collect_status, print_status
from devstack import synth
from devstack.local import LocalRunner, LocalStack
from devstack.localaws import ResourceNames
from tests.e2e.test_aco_target import ACO_ENV

VIEWS = "default:base,fr:base"


@dataclass
class Target:
    runner: LocalRunner
    feed: str  # the feed whose SaaS side is looked at
    held: Callable[[], int]  # how many of its items the SaaS side holds

    def run(self, event: dict[str, Any]) -> dict[str, Any]:
        result = self.runner.reindex(event)
        self.runner.drain()
        return result


@pytest.fixture(params=["commerce-services", "aco"])
def target(request: Any, moto_endpoint: str, tmp_path: Path) -> Iterator[Target]:
    catalog = tmp_path / "catalog.csv"
    synth.generate(catalog, 40, seed=3, store_views=("fr",))
    stack = LocalStack(
        aws_endpoint=moto_endpoint,
        names=ResourceNames.unique(),
        source=str(catalog),
        target=request.param,
    )
    stack.start()
    try:
        if request.param == "aco":
            env = {**stack.env, **ACO_ENV, "STORE_VIEWS": VIEWS, "STORE_VIEW_LOCALES": ""}
            env["ACO_MAX_REQUESTS_PER_SECOND"] = "50"
            runner = LocalRunner(env)
            aco = stack.aco
            yield Target(runner, "acoProducts", lambda: len(aco.state()["products"]))
        else:
            env = {**stack.env, "STORE_VIEWS": VIEWS}
            runner = LocalRunner(env)
            receiver, env_id = stack.receiver, env["SAAS_ENVIRONMENT_ID"]
            assert receiver is not None
            yield Target(runner, "products", lambda: len(receiver.state("products", env_id)))
    finally:
        stack.stop()


def _header_only(tmp_path: Path) -> Path:
    catalog = tmp_path / "catalog.csv"
    empty = tmp_path / "header-only.csv"
    with catalog.open(encoding="utf-8") as f:
        empty.write_text(f.readline(), encoding="utf-8")
    return empty


def test_e2e_a_header_only_export_is_held_until_confirmed(target: Target, tmp_path: Path) -> None:
    first = target.run({"action": "sync"})
    assert all(r["status"] == "completed" for r in first["runs"])
    held_before = target.held()
    assert held_before == 80  # 40 products in two store views
    empty = str(_header_only(tmp_path))

    result = target.run({"action": "sync", "source": empty})

    runs = {r["feed"]: r for r in result["runs"]}
    run = runs[target.feed]
    assert run["status"] == "held" and run["complete"] is True
    assert run["counts"]["deletions_held"] == 80 and run["counts"]["deleted"] == 0
    assert all(r["status"] == "held" for r in runs.values() if r["counts"]["deletions_held"])
    assert target.held() == held_before  # nothing deleted at the SaaS side
    state = target.runner.app.state
    lines: list[str] = []
    print_status(collect_status(state, target.feed), lines.append)
    text = "\n".join(lines)
    assert f"HELD: 80 deletion(s) held by run {run['run_id']}" in text
    assert f"catalogctl resync --feed {target.feed} --confirm-deletions" in text

    again = target.run({"action": "sync", "source": empty})  # the next sync holds them again
    assert {r["feed"]: r for r in again["runs"]}[target.feed]["counts"]["deletions_held"] == 80
    assert target.held() == held_before

    confirmed = target.run(
        {"action": "resync", "feed": target.feed, "source": empty, "confirmDeletions": True}
    )

    run = confirmed["runs"][0]
    assert run["status"] == "completed" and run["counts"]["deleted"] == 80
    assert target.held() == 0
    lines.clear()
    print_status(collect_status(state, target.feed), lines.append)
    assert not any("HELD" in line for line in lines)
