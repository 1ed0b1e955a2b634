"""The ACO part of `make bench` (see bench/run.py): the local stack with the ACO
emulator, a first sync with pacing off, a 1%-changed sync, the pacer's measured
request rate, and the initial load under the base license computed from them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import requests

from catalog_sync.aws.pacing import DynamoPacer
from devstack import demo, synth

WORK = Path(".bench")
STORE_VIEWS = "default:base,fr:base,de:base"
LOCALES = "default:en-US,fr:fr-FR,de:de-DE"
LICENSE_PER_MINUTE = 1_000  # the base license: product upserts a minute
TENANT_RPS = 2  # requests a second per tenant (Adobe's sizing)
LOAD = 100_000  # products of the computed initial load
PACED_REQUESTS = 20  # slots taken to measure the pacer's rate


def _requests(stats: dict[str, Any]) -> int:
    return sum(int(v) for v in stats["statuses"].values())


def measured_rps(env: dict[str, str]) -> float:
    """Request slots a second the pacer gives one tenant at TENANT_RPS, measured on
    the stack's DynamoDB (what the sink waits for before each request)."""
    client = boto3.client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    pacer = DynamoPacer(client, env["STATE_TABLE"], "bench", max_rps=TENANT_RPS, max_wait=30)
    seconds = []
    for _ in range(PACED_REQUESTS):
        if not pacer.acquire():
            raise SystemExit("bench: the pacer refused a slot within 30 s")
        seconds.append(int(time.time()))
    return PACED_REQUESTS / (seconds[-1] - seconds[0] + 1)  # slots per second window


def bench_aco(
    products: int, seed: int, scenario: Callable[[dict[str, str], dict[str, Any]], dict[str, Any]]
) -> dict[str, Any]:
    WORK.mkdir(exist_ok=True)
    catalog = WORK / f"aco-catalog-{products}.csv"
    synth.generate(catalog, products, seed=seed, store_views=("fr", "de"))
    edited = WORK / f"aco-catalog-{products}-1pct.csv"
    change = synth.edit_fraction(catalog, edited, 0.01, seed=seed + 1)
    proc, env = demo.start_stack(show=False, target="aco")
    env.update(
        STORE_VIEWS=STORE_VIEWS,
        STORE_VIEW_LOCALES=LOCALES,
        CATALOG_SOURCE=str(catalog.resolve()),
        ACO_MAX_REQUESTS_PER_SECOND="1000000",  # pacing off: the sink and the emulator
        # a part waiting for its prerequisites (products for metadata) is back in 1 s,
        # not 10: the export's figure is its sending, not the wait
        EXPORT_REQUEUE_DELAY_SECONDS="1",
    )
    stats_url = env["ACO_IMS_URL"].removesuffix("/ims/token/v3") + "/_stats"

    def stats() -> dict[str, Any]:
        data: dict[str, Any] = requests.get(stats_url, timeout=30).json()
        return data

    try:
        first = scenario(env, {"action": "sync"})
        after_first = stats()
        incremental = scenario(env, {"action": "sync", "source": str(edited.resolve())})
        after_incr = stats()
        rps = measured_rps(env)
    finally:
        demo.stop_stack(proc, timeout=30)
    first_requests = _requests(after_first)
    product_upserts = int(after_first["accepted"].get("products", 0))
    incr_requests = _requests(after_incr) - first_requests
    changed = incremental["items_queued"]
    # scaled to LOAD catalog products (SKUs), as many locales each as measured
    scale = LOAD / products
    load_products = product_upserts * scale
    load_requests = first_requests * scale
    by_license = load_products / LICENSE_PER_MINUTE * 60
    by_rate = load_requests / rps
    return {
        "products": products,
        "changed_products": len(change.changed),
        "first_sync": first,
        "first_sync_requests": first_requests,
        "product_upserts": product_upserts,
        "export_items_per_s": first["export_items_per_s"],
        "incremental_1pct": incremental,
        "incremental_requests": incr_requests,
        "requests_per_1000_changed": round(incr_requests / changed * 1000, 1) if changed else None,
        "paced_rps_measured": round(rps, 3),
        "load_100k": {
            "catalog_products": LOAD,
            "aco_products": round(load_products),
            "requests": round(load_requests),
            "minutes_by_license": round(by_license / 60, 1),
            "minutes_by_request_rate": round(by_rate / 60, 1),
            "minutes": round(max(by_license, by_rate) / 60, 1),
            "minutes_per_100k_aco_products": round(LOAD / LICENSE_PER_MINUTE, 1),
        },
    }


def print_aco(r: dict[str, Any]) -> None:
    first, incr, load = r["first_sync"], r["incremental_1pct"], r["load_100k"]
    print(
        f"ACO {r['products']:>7,} products first sync (pacing off): "
        f"{first['items_sent']:,} items sent in {r['first_sync_requests']:,} requests, "
        f"export {first['export_s']:.1f}s = {first['export_items_per_s'] or 0:,} items/s; "
        f"wall {first['wall_s']:.1f}s",
        flush=True,
    )
    print(
        f"ACO {r['products']:>7,} products 1% changed: {incr['items_queued']:,} changed items, "
        f"{r['incremental_requests']:,} requests = {r['requests_per_1000_changed']} "
        "requests per 1,000 changed items",
        flush=True,
    )
    print(
        f"ACO initial load of {load['catalog_products']:,} products "
        f"({load['aco_products']:,} ACO products: SKU x locale, {load['requests']:,} "
        f"requests) under the base license: {load['minutes']:,} min "
        f"(license {LICENSE_PER_MINUTE:,}/min: {load['minutes_by_license']:,} min; "
        f"requests at the measured {r['paced_rps_measured']} req/s: "
        f"{load['minutes_by_request_rate']:,} min); per 100k ACO products "
        f"{load['minutes_per_100k_aco_products']} min",
        flush=True,
    )
    print(json.dumps({"aco": r}), flush=True)
