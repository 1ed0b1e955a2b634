"""`make demo TARGET=aco`: the demo's sync, to the local Adobe Commerce Optimizer
emulator instead of the feed receiver.

The same commands a user would run, as separate processes: `catalogctl local up
--target aco` (moto server + ACO emulator), `catalogctl --local sync` (the first one
sends every entity: metadata, categories, products per locale, price books, prices),
`catalogctl --local sync` after changing the catalog (only what changed goes, deletes
to the `/delete` endpoints), a sync that sends nothing, and `catalogctl --local
status`. It checks what the emulator took at each step (`/_stats`, `/_state`): every
request valid, exactly the changed items, exiting non-zero if anything is off.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from typing import Any

import requests

from devstack import synth
from devstack.demo import (
    PRODUCTS,
    STORE_VIEWS,
    WORK,
    catalogctl,
    edit_catalog,
    say,
    start_stack,
    stop_stack,
)

LOCALES = "default:en-US,fr:fr-FR,de:de-DE"
ENTITIES = ("metadata", "categories", "products", "price-books", "prices")


class Emulator:
    """The local ACO emulator's own routes."""

    def __init__(self, ims_url: str) -> None:
        self.url = ims_url.removesuffix("/ims/token/v3")

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = requests.get(f"{self.url}/_stats", timeout=10).json()
        return data

    def accepted(self) -> Counter[str]:
        return Counter(self.stats()["accepted"])

    def held(self) -> dict[str, int]:
        state = requests.get(f"{self.url}/_state", timeout=60).json()
        return {name: len(state[name]) for name in ENTITIES}

    def refused(self) -> dict[str, int]:
        return {k: v for k, v in self.stats()["statuses"].items() if k != "200"}


def check(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"demo: {message}")


def show(counts: Counter[str]) -> None:
    for key in sorted(counts):
        print(f"  {key:<20} {counts[key]:>6,} items")


def main() -> None:
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir()
    catalog = WORK / "catalog.csv"
    views = len(STORE_VIEWS.split(","))

    say(f"A sample Magento catalog: {PRODUCTS:,} products, store views fr and de")
    stats = synth.generate(catalog, PRODUCTS, seed=7, store_views=("fr", "de"))
    print(f"  {catalog}: {stats.rows:,} rows, {stats.configurables} configurables")

    say("Start the embedded local stack (moto server over HTTP + local ACO emulator)")
    proc, stack_env = start_stack(catalog, target="aco")
    env = {**os.environ, **stack_env, "STORE_VIEWS": STORE_VIEWS, "STORE_VIEW_LOCALES": LOCALES}
    env["ACO_MAX_REQUESTS_PER_SECOND"] = "20"  # the emulator's own tenant; Adobe's: 2
    aco = Emulator(stack_env["ACO_IMS_URL"])
    try:
        say("First sync: every ACO entity, every locale (metadata first)")
        catalogctl("--local", "sync", env=env)
        held = aco.held()
        for name in ENTITIES:
            print(f"  the emulator holds {held[name]:>6,} {name}")
        check(held["products"] == PRODUCTS * views, f"expected {PRODUCTS * views} products")
        check(aco.refused() == {}, f"the emulator refused requests: {aco.refused()}")

        edit_catalog(catalog)

        say("The hourly sync: only what changed is sent")
        before = aco.accepted()
        catalogctl("--local", "sync", env=env)
        sent = aco.accepted() - before
        show(sent)
        expected = {
            "products": 3 * views,  # the added products, per locale
            "products/delete": 5 * views,  # the removed ones, per locale
            "prices": 10 + 3,  # the changed and the added prices (one website)
            "prices/delete": 5,
        }
        for key, n in expected.items():
            check(sent[key] == n, f"expected {n} {key} items, the emulator took {sent[key]}")
        check(aco.refused() == {}, f"the emulator refused requests: {aco.refused()}")

        say("Sync again: nothing changed, nothing is sent")
        before = aco.accepted()
        catalogctl("--local", "sync", env=env)
        check(aco.accepted() == before, "a sync without changes sent items")
        print("  0 items sent")

        say("Status")
        catalogctl("--local", "status", "--feed", "acoProducts", env=env)
    finally:
        stop_stack(proc)
    say("Demo complete (the ACO target)")
    print("  the real service: docs/deploy.md, 'Sending to Adobe Commerce Optimizer'")


if __name__ == "__main__":
    main()
