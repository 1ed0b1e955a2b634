"""Helpers for the fault tests: a minimal export CSV, expectations read with `csv`,
the state's records, hashes of held items, and crash injection on an `App`.

Crash injection: `install_crashes(app, plan)` swaps the instance's class for a subclass
whose adapter properties (`state`, `blobs`, `queue`, `sink`) return proxies. A proxy
counts the calls of the watched methods (`FeedState.write_bucket` and `write_prepared`, the
diff's two-step write, `BlobStore.put_file`,
`ExportQueue.send`, `FeedSink.send`) and, at the armed call, raises `Crash` before or
after the real call (after: the effect happened, the caller never learns it).
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from catalog_sync.app import App
from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import KEY_SEPARATOR
from catalog_sync.sync.canonical import encode
from catalog_sync.sync.state import ItemState

MINIMAL_COLUMNS: tuple[str, ...] = (
    "sku",
    "store_view_code",
    "product_type",
    "product_websites",
    "name",
    "price",
    "qty",
    "is_in_stock",
    "url_key",
    "visibility",
    "product_online",
)


@dataclass(frozen=True)
class Product:
    name: str
    price: float
    qty: int = 10


def write_catalog(path: Path, products: Mapping[str, Product], order: Iterable[str]) -> None:
    """A minimal Magento export CSV: one global row per product, in `order`."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(MINIMAL_COLUMNS)
        for sku in order:
            p = products[sku]
            writer.writerow(
                [
                    sku,
                    "",
                    "simple",
                    "base",
                    p.name,
                    f"{p.price:.4f}",
                    f"{p.qty:.4f}",
                    "1" if p.qty > 0 else "0",
                    sku.lower(),
                    "Catalog, Search",
                    "1",
                ]
            )


def catalog_prices(path: Path) -> dict[str, float | None]:
    """SKU -> regular price of the global rows of an export CSV, read with `csv`
    (independent of the code under test)."""
    out: dict[str, float | None] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("store_view_code"):
                continue
            price = (row.get("price") or "").strip()
            out[row["sku"]] = float(price) if price else None
    return out


def state_records(app: App, feed: str = "products") -> dict[str, ItemState]:
    """Every record of a feed's state (key -> ItemState)."""
    state = app.state
    meta = state.read_meta(feed)
    if meta is None:
        return {}
    out: dict[str, ItemState] = {}
    for bucket in state.read_buckets(feed, list(range(meta.buckets))):
        out.update(bucket.records)
    return out


def held_hash(feed: str, item: dict[str, Any]) -> str:
    """The content hash of a held item as the reindex computes it: through the feed's
    model (a plain dict hashes differently: sorted keys vs declared order)."""
    spec = get_feed(feed)
    if spec.aggregate:
        return encode(spec, item).hash
    return encode(spec, spec.model.model_validate(item)).hash


def key_of(sku: str, view: str = "default") -> str:
    return f"{sku}{KEY_SEPARATOR}{view}"


def without_modified_at(items: Mapping[Any, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {k: {f: v for f, v in i.items() if f != "modifiedAt"} for k, i in items.items()}


def sent_but_not_held(
    records: Mapping[str, ItemState], held: Mapping[tuple[str, str], dict[str, Any]]
) -> list[str]:
    """Keys the state calls `sent` that the receiver does not hold with that hash
    (or, for a sent deletion, still holds)."""
    bad = []
    for key, rec in records.items():
        if rec.status.value != "sent":
            continue
        sku, view = key.split(KEY_SEPARATOR)
        item = held.get((sku, view))
        if rec.deleted:
            if item is not None:
                bad.append(f"{sku}/{view}: state says deleted+sent, receiver holds it")
        elif item is None:
            bad.append(f"{sku}/{view}: state says sent, receiver lacks it")
        elif held_hash("products", item) != rec.hash:
            bad.append(f"{sku}/{view}: state says sent {rec.hash}, receiver holds another version")
    return bad


# -- crash injection ---------------------------------------------------------------


class Crash(RuntimeError):
    """The injected crash."""

    def __init__(self, where: str) -> None:
        super().__init__(f"crash ({where})")
        self.where = where


WATCHED: dict[str, tuple[str, ...]] = {
    "state": ("write_bucket", "write_prepared"),
    "blobs": ("put_file",),
    "queue": ("send",),
    "sink": ("send",),
}

When = Literal["before", "after"]


@dataclass
class CrashPlan:
    """Arm with `arm(target, n, when)`: the n-th call (from now) of the target's
    watched method crashes, once. `calls` counts every watched call; `fired` lists
    the crashes that happened."""

    armed: dict[str, tuple[int, When]] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    fired: list[str] = field(default_factory=list)
    # Called on every `sink.send` with (feed, items) before it is sent.
    on_send: Callable[[str, Any], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def arm(self, target: str, n: int, when: When = "before") -> None:
        if target not in WATCHED:
            raise ValueError(f"unknown crash target {target!r} (known: {', '.join(WATCHED)})")
        self.armed[target] = (self.calls.get(target, 0) + n, when)

    def disarm(self) -> None:
        self.armed.clear()

    def _check(self, target: str, n: int, when: When) -> None:
        with self._lock:  # the diff writes state from a thread
            plan = self.armed.get(target)
            if plan is None or plan[0] != n or plan[1] != when:
                return
            del self.armed[target]
            where = f"{target}.{'/'.join(WATCHED[target])} call {n}, {when}"
            self.fired.append(where)
        raise Crash(where)

    def call(self, target: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            n = self.calls[target] = self.calls.get(target, 0) + 1
        self._check(target, n, "before")
        result = fn(*args, **kwargs)
        self._check(target, n, "after")
        return result


class _Proxy:
    def __init__(self, target: str, inner: Any, plan: CrashPlan) -> None:
        self._target = target
        self._inner = inner
        self._plan = plan

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in WATCHED[self._target]:
            return attr
        plan, target = self._plan, self._target

        def watched(*args: Any, **kwargs: Any) -> Any:
            if target == "sink" and plan.on_send is not None:
                plan.on_send(*args, **kwargs)
            return plan.call(target, attr, *args, **kwargs)

        return watched


def install_crashes(app: App, plan: CrashPlan) -> CrashPlan:
    """Make `app` hand out proxied adapters (see the module docstring)."""
    base = type(app)

    class CrashingApp(base):  # type: ignore[valid-type, misc]
        @property
        def state(self) -> Any:
            return _Proxy("state", base.state.fget(self), plan)  # type: ignore[attr-defined]

        @property
        def blobs(self) -> Any:
            return _Proxy("blobs", base.blobs.fget(self), plan)  # type: ignore[attr-defined]

        @property
        def queue(self) -> Any:
            return _Proxy("queue", base.queue.fget(self), plan)  # type: ignore[attr-defined]

        @property
        def sink(self) -> Any:
            return _Proxy("sink", base.sink.fget(self), plan)  # type: ignore[attr-defined]

    app.__class__ = CrashingApp
    return plan


def record_sleeps(app: App, *, cap: float | None = None) -> list[float]:
    """Record the delays the HTTP sink sleeps (its backoff and Retry-After waits); with
    `cap`, sleep at most that long (fast tests; the asked delay is still recorded)."""
    sink: Any = app.sink
    inner: Any = getattr(sink, "_inner", sink)
    asked: list[float] = []

    def sleep(seconds: float) -> None:
        asked.append(seconds)
        time.sleep(seconds if cap is None else min(seconds, cap))

    inner.retry.sleep = sleep
    return asked


def retry_whole_failed_batches(runner: Any) -> None:
    """Make the runner's export handler answer an SQS batch whose every record failed
    with `batchItemFailures` for all of them (what Lambda does with an invocation that
    raised: every message comes back), instead of letting Powertools'
    `BatchProcessingError` escape `LocalRunner.drain()` with the messages left
    invisible. See the report: the export handler's `BatchProcessor` raises on an
    entire-batch failure, so `drain()` neither re-queues nor raises `AuthError`."""
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    module = runner._export
    handler = module.handler

    def wrapped(event: dict[str, Any], context: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = handler(event, context)
        except BatchProcessingError:
            ids = [r["messageId"] for r in event["Records"]]
            return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}
        return result

    module.handler = wrapped
