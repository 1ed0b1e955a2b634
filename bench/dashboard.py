"""Page load times of the dashboard on a large feed: `python -m bench.dashboard [ITEMS]`
(`make bench-dashboard`; default 500,000 items).

The feed's state is written straight into the local stack (moto over HTTP), as a sync
of that many items leaves it: every bucket with its records and its stored counts, a
snapshot part per bucket, 0.5 % of the items failed or retrying with reasons, 30 run
records. Then the dashboard is served as `catalogctl dashboard` serves it, and each
page is fetched over HTTP (with the token's cookie) a few times; the median is
printed per page, with the items of the feed, and a JSON line at the end.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from catalog_sync.feeds.spec import KEY_SEPARATOR, bucket_of
from catalog_sync.sync.canonical import EncodedItem
from catalog_sync.sync.runs import FeedMeta, RunRecord
from catalog_sync.sync.snapshot import PartWriter, part_key
from catalog_sync.sync.state import ItemState, PartRef, StateBucket, Status
from catalogctl.common import Target
from catalogctl.dashboard.server import serve
from devstack.local import LocalRunner, LocalStack

FEED = "products"
BUCKETS = 64
REPEAT = 5
STORE_VIEWS = ("default", "fr", "de")


def _state(runner: LocalRunner, items: int, now: datetime, workdir: Path) -> str:
    """Write a feed of `items` items (products x 3 store views); return a SKU in it."""
    run_id = f"{now:%Y%m%dT%H%M%S}000Z-bench"
    buckets: dict[int, StateBucket] = {b: StateBucket(feed=FEED, bucket=b) for b in range(BUCKETS)}
    skus = [f"BENCH-{i:07d}" for i in range(items // len(STORE_VIEWS))]
    for i, sku in enumerate(skus):
        records = buckets[bucket_of(sku, BUCKETS)].records
        for view in STORE_VIEWS:
            h = hashlib.blake2b(f"{sku}/{view}".encode(), digest_size=8).hexdigest()
            if i % 200 == 7:
                rec = ItemState(
                    h,
                    Status.FAILED,
                    reason=f"item {i}: price must be >= 0",
                    changed_at=now.isoformat(),
                    run_id=run_id,
                    attempts=1,
                )
            elif i % 200 == 11:
                rec = ItemState(
                    h,
                    Status.RETRY,
                    reason="503 from the SaaS API",
                    changed_at=now.isoformat(),
                    run_id=run_id,
                    attempts=2,
                )
            else:
                rec = ItemState(
                    h, Status.SENT, sent_hash=h, changed_at=now.isoformat(), run_id=run_id
                )
            records[f"{sku}{KEY_SEPARATOR}{view}"] = rec
    for bucket in buckets.values():
        path = workdir / f"part-{bucket.bucket}.jsonl.gz"
        writer = PartWriter(path)
        for key, rec in bucket.records.items():
            sku, view = key.split(KEY_SEPARATOR)
            body = json.dumps(
                {
                    "sku": sku,
                    "storeViewCode": view,
                    "name": f"Product {sku}",
                    "price": 10.0,
                    "description": "<p>" + "lorem ipsum " * 20 + "</p>",
                }
            ).encode()
            writer.write(EncodedItem(key, sku, rec.hash, body))
        size, sha = writer.close()
        key = part_key(FEED, run_id, bucket.bucket)
        runner.app.blobs.put_file(key, path)
        path.unlink()
        bucket.part = PartRef(key=key, items=writer.items, bytes=size, sha256=sha, run_id=run_id)
        runner.app.state.write_bucket(bucket)
    state = runner.app.state
    state.write_meta(FeedMeta(feed=FEED, buckets=BUCKETS, last_run_id=run_id))
    for r in range(30):
        started = now - timedelta(hours=30 - r)
        state.put_run(
            RunRecord(
                feed=FEED,
                run_id=f"{started:%Y%m%dT%H%M%S}000Z-r{r:02d}",
                kind="sync",
                started_at=started.isoformat(),
                finished_at=(started + timedelta(seconds=40)).isoformat(),
                status="completed",
                counts={"new": r, "changed": 100 + r, "deleted": 1},
                complete=True,
            )
        )
    return skus[len(skus) // 2]


def _fetch(opener: urllib.request.OpenerDirector, url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with opener.open(url, timeout=300) as resp:
        size = len(resp.read())
    return time.perf_counter() - t0, size


def main() -> None:
    items = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    stack = LocalStack().start()
    try:
        runner = LocalRunner(stack.env)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            sku = _state(runner, items, datetime.now(UTC), Path(tmp))
        print(f"state of {items:,} items written in {time.perf_counter() - t0:.1f} s")
        server, url = serve(
            Target(local=True, stack="", region=None),
            "127.0.0.1",
            0,
            lambda _line: None,
            runner=runner,
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = url.split("/?")[0]
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        opener.open(url).read()  # the token becomes a cookie
        pages = {
            "overview": "/",
            "runs": f"/runs?feed={FEED}",
            "items: search one SKU": f"/items?feed={FEED}&mode=sku&q={sku}",
            "items: browse, first page": f"/items?feed={FEED}&mode=prefix&q=",
            "items: prefix search": f"/items?feed={FEED}&mode=prefix&q={sku[:-2]}",
            "failures": f"/failures?feed={FEED}",
            "failures sorted by reason": f"/failures?feed={FEED}&sort=reason&dir=desc",
            "actions": "/actions",
        }
        out: dict[str, float] = {}
        for name, path in pages.items():
            times = []
            size = 0
            for _ in range(REPEAT):
                t, size = _fetch(opener, base + path)
                times.append(t)
            out[name] = round(statistics.median(times), 3)
            print(f"  {name:<28} {out[name] * 1000:8.0f} ms  ({size / 1024:,.0f} KiB)")
        server.shutdown()
        print(json.dumps({"dashboard_items": items, "page_load_s": out}))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
