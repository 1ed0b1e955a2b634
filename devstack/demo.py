"""`make demo`: a real sync, end to end, on the embedded local stack
(`make demo TARGET=aco`: the same to the local ACO emulator, `devstack/demo_aco.py`).

It runs the same commands a user would, as separate processes:
`catalogctl local up` (moto server + feed receiver), `catalogctl --local resync`,
`catalogctl --local sync` after changing the catalog, `--no-reindex` with the
source gone, `catalogctl --local status`, and the mass-deletion guard (a header-only
export held, then `resync --confirm-deletions`); and it checks what the receiver
got at each step, exiting non-zero if anything is off.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from devstack import synth

WORK = Path(".demo")
PRODUCTS = 1_000
STORE_VIEWS = "default:base,fr:base,de:base"


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def catalogctl(*args: str, env: dict[str, str]) -> str:
    cmd = [sys.executable, "-m", "catalogctl.cli", *args]
    print("$ catalogctl " + " ".join(args), flush=True)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    print(out.rstrip())
    if proc.returncode != 0:
        raise SystemExit(f"demo: `catalogctl {' '.join(args)}` failed ({proc.returncode})")
    return out


class Receiver:
    def __init__(self, url: str) -> None:
        self.url = url

    def items_received(self) -> int:
        stats: dict[str, Any] = requests.get(f"{self.url}/_stats", timeout=10).json()
        return int(stats["items"]["accepted"])

    def state(self, feed: str, env_id: str) -> list[dict[str, Any]]:
        data = requests.get(f"{self.url}/_state/{feed}/{env_id}", timeout=30).json()
        items: list[dict[str, Any]] = data["items"]
        return items


def start_stack(
    source: Path | None = None, *, show: bool = True, target: str = "commerce-services"
) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """`catalogctl local up [--target aco]` in a child process, on free ports; its
    environment."""
    args = ["local", "up", "--aws-port", "0", "--receiver-port", "0"]
    shown = " --target aco" if target == "aco" else ""
    if target == "aco":
        args += ["--target", "aco"]
    if source is not None:
        args += ["--source", str(source)]
        if show:
            print(f"$ catalogctl local up{shown} --source {source}", flush=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "catalogctl.cli", *args], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    env: dict[str, str] = {}
    for line in proc.stdout:
        line = line.strip()
        if not line:
            break
        key, _, value = line.partition("=")
        env[key] = value
        if show:
            print(f"  {line}")
    if "AWS_ENDPOINT_URL" not in env:
        proc.kill()
        raise SystemExit("the local stack did not start")
    return proc, env


def stop_stack(proc: subprocess.Popen[str], timeout: float = 10) -> None:
    """Stop `catalogctl local up` (Ctrl-C), or kill it when it does not stop in time."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def edit_catalog(catalog: Path) -> synth.EditResult:
    """The demo's edit: 10 prices changed, 5 products removed, 3 added."""
    say("Change 10 prices, remove 5 products, add 3 (standalone products)")
    edited = WORK / "catalog-edited.csv"
    change = synth.edit(catalog, edited, change_prices=10, remove=5, add=3, seed=11)
    edited.replace(catalog)
    print(f"  changed: {', '.join(change.changed)}")
    print(f"  removed: {', '.join(change.removed)}")
    print(f"  added:   {', '.join(change.added)}")
    return change


def show_the_guard(catalog: Path, env: dict[str, str], receiver: Receiver, env_id: str) -> None:
    """The mass-deletion guard: a header-only export is held, then released."""
    say("A failed Magento export job: the catalog file holds only its header row")
    with (WORK / "catalog-away.csv").open(encoding="utf-8") as f:
        catalog.write_text(f.readline(), encoding="utf-8")
    held_before = len(receiver.state("products", env_id))
    before = receiver.items_received()
    out = catalogctl("--local", "sync", env=env)
    held = len(receiver.state("products", env_id))
    print(
        f"  the receiver still holds {held:,} products items; {receiver.items_received() - before} sent"
    )
    if held != held_before or "HELD" not in out or receiver.items_received() != before:
        raise SystemExit("demo: the header-only export was not held")

    say("Status says what is held and how to release it")
    out = catalogctl("--local", "status", "--feed", "products", env=env)
    if "--confirm-deletions" not in out:
        raise SystemExit("demo: status does not say how to release the held deletions")

    say("The deletions are meant: confirm them")
    catalogctl("--local", "resync", "--feed", "products", "--confirm-deletions", env=env)
    left = len(receiver.state("products", env_id))
    print(f"  the receiver holds {left} products items")
    if left != 0:
        raise SystemExit(f"demo: {left} products items left after the confirmed deletions")


def main() -> None:
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir()
    catalog = WORK / "catalog.csv"

    say(f"A sample Magento catalog: {PRODUCTS:,} products, store views fr and de")
    stats = synth.generate(catalog, PRODUCTS, seed=7, store_views=("fr", "de"))
    print(
        f"  {catalog}: {stats.rows:,} rows, {stats.configurables} configurables, {stats.bytes:,} bytes"
    )

    say("Start the embedded local stack (moto server over HTTP + local SaaS feed receiver)")
    proc, stack_env = start_stack(catalog)
    env = {**os.environ, **stack_env, "STORE_VIEWS": STORE_VIEWS}
    receiver = Receiver(stack_env["SAAS_BASE_URL"])
    env_id = stack_env["SAAS_ENVIRONMENT_ID"]
    try:
        say("Full resync: every product, every store view")
        catalogctl("--local", "resync", "--feed", "products", env=env)
        held = receiver.state("products", env_id)
        print(f"  the receiver holds {len(held):,} products items")

        change = edit_catalog(catalog)

        say("The hourly sync: only what changed is sent")
        before = receiver.items_received()
        catalogctl("--local", "sync", env=env)
        sent = receiver.items_received() - before
        views = len(STORE_VIEWS.split(","))
        expected = 18 * views
        print(f"  the receiver got {sent} items: 18 products x {views} store views = {expected}")
        if sent != expected:
            raise SystemExit(f"demo: expected {expected} items, got {sent}")
        held = receiver.state("products", env_id)
        skus = {i["sku"] for i in held}
        assert not (skus & set(change.removed)), "removed products are still held"
        assert set(change.added) <= skus, "added products are missing"

        say("Sync again: nothing changed, nothing is sent")
        before = receiver.items_received()
        catalogctl("--local", "sync", env=env)
        if receiver.items_received() != before:
            raise SystemExit("demo: a sync without changes sent items")
        print("  0 items sent")

        say("Resync --no-reindex with the catalog gone: the compiled feed is resent")
        catalog.rename(WORK / "catalog-away.csv")
        before = receiver.items_received()
        catalogctl("--local", "resync", "--feed", "products", "--no-reindex", env=env)
        print(f"  the receiver got {receiver.items_received() - before:,} items again")

        say("Status")
        catalogctl("--local", "status", "--feed", "products", env=env)

        show_the_guard(catalog, env, receiver, env_id)
    finally:
        stop_stack(proc)
    say("Demo complete")
    print(
        "  open the dashboard on this stack: catalogctl local up, then catalogctl --local dashboard"
    )


if __name__ == "__main__":
    if sys.argv[1:] in (["--target", "aco"], ["--target=aco"]):
        from devstack import demo_aco

        demo_aco.main()
    elif sys.argv[1:] in ([], ["--target", "commerce-services"]):
        main()
    else:
        raise SystemExit("usage: python -m devstack.demo [--target commerce-services|aco]")
