"""HttpFeedSink against the real local receiver, with faults."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import orjson
import pytest

from catalog_sync.errors import AuthError, ConfigError
from catalog_sync.http import retry_after_seconds
from catalog_sync.ports import ItemOutcome, OutgoingItem
from catalog_sync.sinks import feed_api
from catalog_sync.sinks.feed_api import HttpFeedSink
from devstack.receiver import FeedReceiver

KEY = "sink-test-key-0123456789"
ENV = "env-sink"
WHEN = "2024-05-01T10:00:00+00:00"


class Sleeps:
    """An injected `sleep` that records and does not wait."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def receiver() -> Iterator[FeedReceiver]:
    with FeedReceiver(api_key=KEY) as r:
        yield r


def item(sku: str, *, pad: int = 0, deleted: bool = False) -> OutgoingItem:
    body = {"sku": sku, "storeViewCode": "default", "name": "x" * pad, "deleted": deleted}
    body["modifiedAt"] = WHEN
    return OutgoingItem(key=f"{sku}\x1fdefault", hash=f"h-{sku}-{pad}", body=orjson.dumps(body))


def items(n: int, *, pad: int = 0) -> list[OutgoingItem]:
    return [item(f"SKU-{i:05d}", pad=pad) for i in range(n)]


def sink_for(r: FeedReceiver, sleeps: Sleeps | None = None, key: str = KEY, **kw) -> HttpFeedSink:
    return HttpFeedSink(r.url, ENV, lambda: key, sleep=sleeps or Sleeps(), rng=lambda: 0.5, **kw)


def held_skus(r: FeedReceiver) -> set[str]:
    return {i["sku"] for i in r.state("products", ENV)}


def statuses(outcomes: list[ItemOutcome]) -> list[str]:
    return [o.status for o in outcomes]


def test_http_sink_sends_everything_in_batches(receiver: FeedReceiver):
    sink = sink_for(receiver, max_items=4)

    outcomes = sink.send("products", items(10))

    assert outcomes == [ItemOutcome("sent")] * 10
    assert len(held_skus(receiver)) == 10
    stats = receiver.stats()
    assert stats["requests"] == {"total": 3, "200": 3}
    assert stats["items"]["accepted"] == 10


def test_http_sink_deleted_items_remove_them_at_the_receiver(receiver: FeedReceiver):
    sink = sink_for(receiver)
    sink.send("products", items(3))

    outcomes = sink.send("products", [item("SKU-00001", deleted=True)])

    assert statuses(outcomes) == ["sent"]
    assert held_skus(receiver) == {"SKU-00000", "SKU-00002"}


def test_http_sink_batch_id_is_stable_and_a_resent_batch_is_a_duplicate(receiver: FeedReceiver):
    sink = sink_for(receiver)
    batch = items(5)

    assert sink.batch_id("products", batch, range(5)) == sink.batch_id("products", batch, range(5))
    assert sink.batch_id("products", batch, range(5)) != sink.batch_id("prices", batch, range(5))
    assert sink.batch_id("products", batch, range(4)) != sink.batch_id("products", batch, range(5))
    sink.send("products", batch)
    again = sink.send("products", batch)

    assert statuses(again) == ["sent"] * 5
    assert receiver.stats()["items"]["duplicate"] == 5


def test_http_sink_a_batch_it_cut_goes_as_encoded_when_cut_and_as_any_other(
    receiver: FeedReceiver, monkeypatch: pytest.MonkeyPatch
):
    """`batches` has each request's body compressed as it cuts it, on a thread of the
    sink's own (the export cuts the next request while one is out); `send` of such a
    batch posts that body: the same bytes and id as the items sent as a plain list, and
    retries and 413 splits still work."""
    sink = sink_for(receiver, max_items=4)
    compressed: list[str] = []
    real = feed_api.gzip.compress

    def compress(data: bytes, **kw: Any) -> bytes:
        compressed.append(threading.current_thread().name)
        return real(data, **kw)

    monkeypatch.setattr(feed_api.gzip, "compress", compress)
    cuts = list(sink.batches("products", iter(items(10))))
    assert [len(c) for c in cuts] == [4, 4, 2]
    receiver.add_fault({"status": 503, "times": 1})
    assert statuses(sink.send("products", cuts[0])) == ["sent"] * 4  # after a retry
    assert statuses(sink.send("products", cuts[2])) == ["sent"] * 2
    sink.close()  # waits for the encoder
    assert len(compressed) == 3 and all(t.startswith("sink-encode") for t in compressed)
    assert statuses(sink.send("products", list(cuts[0]))) == ["sent"] * 4
    assert compressed[3] == threading.current_thread().name  # a plain list: made in send
    assert receiver.stats()["items"]["duplicate"] == 4  # the same batch id as the cut
    receiver.add_fault({"status": 413, "times": 1})
    assert statuses(sink.send("products", cuts[1])) == ["sent"] * 4  # split in halves
    assert held_skus(receiver) == {f"SKU-{i:05d}" for i in range(10)}
    made = len(compressed)
    sink.send("prices", cuts[2])  # cut for another feed: its id and body made anew
    assert len(compressed) == made + 1
    other = sink_for(receiver, max_items=4)
    other.send("products", cuts[2])  # another sink's cut: made anew
    assert len(compressed) == made + 2
    cuts[1].pop()  # a cut changed since: made anew, for what it holds now
    assert statuses(sink.send("products", cuts[1])) == ["sent"] * 3
    assert len(compressed) == made + 3


def test_http_sink_a_cut_with_an_item_over_the_limit_is_cut_anew_when_sent(
    receiver: FeedReceiver,
):
    sink = sink_for(receiver, max_bytes=400)
    stream = [item("SKU-00001"), item("SKU-00002", pad=500), item("SKU-00003")]
    (cut,) = list(sink.batches("products", iter(stream)))  # the big one rides along
    assert len(cut) == 3
    outcomes = sink.send("products", cut)
    assert statuses(outcomes) == ["sent", "failed", "sent"]
    assert "over the 400-byte request limit" in (outcomes[1].reason or "")
    assert held_skus(receiver) == {"SKU-00001", "SKU-00003"}


def test_http_sink_retries_503_twice_then_succeeds(receiver: FeedReceiver):
    receiver.add_fault({"status": 503, "times": 2})
    sleeps = Sleeps()

    outcomes = sink_for(receiver, sleeps, backoff_base=0.5).send("products", items(3))

    assert statuses(outcomes) == ["sent"] * 3
    assert sleeps.calls == [0.25, 0.5]  # full jitter: rng() * base * 2**n, rng() = 0.5
    assert receiver.stats()["requests"] == {"total": 3, "503": 2, "200": 1}
    assert len(held_skus(receiver)) == 3


def test_http_sink_honours_retry_after_on_429(receiver: FeedReceiver):
    receiver.add_fault({"status": 429, "times": 1, "retry_after": 2})
    sleeps = Sleeps()

    outcomes = sink_for(receiver, sleeps).send("products", items(2))

    assert statuses(outcomes) == ["sent", "sent"]
    assert sleeps.calls == [2.0]  # exactly what Retry-After asked


def test_http_sink_retry_after_over_the_cap_leaves_items_for_later(receiver: FeedReceiver):
    receiver.add_fault({"status": 429, "times": 1, "retry_after": 3600})
    sleeps = Sleeps()

    outcomes = sink_for(receiver, sleeps, backoff_cap=20).send("products", items(2))

    assert statuses(outcomes) == ["retry", "retry"]
    assert "Retry-After 3600s" in (outcomes[0].reason or "")
    assert sleeps.calls == []


def test_http_sink_gives_up_after_max_tries_and_skips_the_rest(receiver: FeedReceiver):
    receiver.add_fault({"status": 503, "times": 50})
    sleeps = Sleeps()

    outcomes = sink_for(receiver, sleeps, max_tries=3, max_items=2).send("products", items(5))

    assert statuses(outcomes) == ["retry"] * 5
    assert outcomes[0].reason == "HTTP 503 after 3 tries"
    assert "HTTP 503 after 3 tries" in (outcomes[4].reason or "")
    assert len(sleeps.calls) == 2
    assert receiver.stats()["requests"]["total"] == 3  # the other batches were not tried


def test_http_sink_retries_a_dropped_connection(receiver: FeedReceiver):
    receiver.add_fault({"drop_connection": 1})
    sleeps = Sleeps()

    outcomes = sink_for(receiver, sleeps).send("products", items(3))

    assert statuses(outcomes) == ["sent"] * 3
    assert len(sleeps.calls) == 1
    assert receiver.stats()["requests"]["dropped"] == 1


def test_http_sink_connection_refused_comes_back_retry():
    with FeedReceiver(api_key=KEY) as r:
        url = r.url
    sink = HttpFeedSink(url, ENV, lambda: KEY, sleep=Sleeps(), max_tries=2)

    outcomes = sink.send("products", items(2))

    assert statuses(outcomes) == ["retry", "retry"]
    assert (outcomes[0].reason or "").startswith("connection error")
    assert "after 2 tries" in (outcomes[0].reason or "")


def test_http_sink_retries_a_timeout(receiver: FeedReceiver):
    receiver.add_fault({"latency_ms": 500})
    sleeps = Sleeps()

    outcomes = sink_for(receiver, sleeps, timeout=(2, 0.05)).send("products", items(1))
    # the receiver applied the slow request too; the retry is the same batch id
    assert statuses(outcomes) == ["sent"]
    assert len(sleeps.calls) == 1
    assert held_skus(receiver) == {"SKU-00000"}


def test_http_sink_marks_invalid_items_failed_with_the_receivers_message(
    receiver: FeedReceiver,
):
    receiver.add_fault({"reject": {"sku": ["SKU-00001"]}})
    broken = OutgoingItem(
        "B\x1fdefault", "hb", b'{"sku":"B","storeViewCode":"default","deleted":false}'
    )

    outcomes = sink_for(receiver).send("products", [*items(3), broken])

    assert statuses(outcomes) == ["sent", "failed", "sent", "failed"]
    assert "rejected" in (outcomes[1].reason or "")
    assert "SKU-00001" in (outcomes[1].reason or "")
    assert "'modifiedAt' is missing" in (outcomes[3].reason or "")
    assert held_skus(receiver) == {"SKU-00000", "SKU-00002"}


def test_http_sink_400_fails_the_whole_batch_only(receiver: FeedReceiver):
    receiver.add_fault({"status": 400, "times": 1})

    outcomes = sink_for(receiver, max_items=2).send("products", items(4))

    assert statuses(outcomes) == ["failed", "failed", "sent", "sent"]
    assert "HTTP 400" in (outcomes[0].reason or "")
    assert "fault plan" in (outcomes[0].reason or "")
    assert held_skus(receiver) == {"SKU-00002", "SKU-00003"}


@pytest.mark.parametrize("key", ["wrong-key-value", ""])
def test_http_sink_refused_key_raises_auth_error_without_the_key(
    receiver: FeedReceiver, key: str, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    sink = sink_for(receiver, key=key)

    with pytest.raises(AuthError) as err:
        sink.send("products", items(2))

    assert "HTTP 40" in str(err.value)
    if key:
        assert key not in str(err.value)
        assert key not in caplog.text
    assert held_skus(receiver) == set()


def test_http_sink_never_logs_the_key(receiver: FeedReceiver, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    receiver.add_fault({"status": 503, "times": 1})

    sink_for(receiver).send("products", items(2))

    assert caplog.records
    assert KEY not in caplog.text
    assert '"sku"' not in caplog.text  # no item bodies either


def test_http_sink_splits_batches_the_receiver_finds_too_large():
    with FeedReceiver(api_key=KEY, max_items=3) as r:
        outcomes = sink_for(r).send("products", items(10))

        assert statuses(outcomes) == ["sent"] * 10
        assert len(held_skus(r)) == 10
        stats = r.stats()["requests"]
        assert stats["413"] >= 1
        assert stats["200"] == 4  # 10 -> 5+5 -> 2+3 +2+3


def test_http_sink_splits_on_the_receivers_byte_limit_and_fails_a_lone_oversize_item():
    with FeedReceiver(api_key=KEY, max_bytes=2_000) as r:
        batch = [*items(8, pad=300), item("HUGE", pad=3_000)]

        outcomes = sink_for(r).send("products", batch)

        assert statuses(outcomes) == ["sent"] * 8 + ["failed"]
        assert "HTTP 413" in (outcomes[8].reason or "")
        assert len(held_skus(r)) == 8


def test_http_sink_batches_by_its_own_byte_limit_and_fails_oversize_items_locally(
    receiver: FeedReceiver,
):
    small = items(6, pad=200)  # about 280 bytes each
    big = item("BIG", pad=5_000)
    sink = sink_for(receiver, max_bytes=1_000)

    outcomes = sink.send("products", [*small[:3], big, *small[3:]])

    assert statuses(outcomes) == ["sent"] * 3 + ["failed"] + ["sent"] * 3
    assert "over the 1000-byte request limit" in (outcomes[3].reason or "")
    stats = receiver.stats()
    assert stats["requests"]["total"] == 2  # 3 items fit in 1000 bytes, 4 do not
    assert stats["bytes"]["uncompressed"] <= 2_000


def test_http_sink_unexpected_status_leaves_items_for_later(receiver: FeedReceiver):
    sink = HttpFeedSink(receiver.url + "/wrong-prefix", ENV, lambda: KEY, sleep=Sleeps())

    outcomes = sink.send("products", items(2))

    assert statuses(outcomes) == ["retry", "retry"]
    assert "unexpected HTTP 404" in (outcomes[0].reason or "")


def test_http_sink_rejects_a_bad_base_url():
    with pytest.raises(ConfigError):
        HttpFeedSink("ftp://example.com", ENV, lambda: KEY)
    with pytest.raises(ConfigError):
        HttpFeedSink("https://example.com", "", lambda: KEY)


def test_http_sink_keeps_tls_verification_on():
    sink = HttpFeedSink("https://example.com", ENV, lambda: KEY)

    assert sink._session.verify is True


def test_http_sink_empty_send_returns_nothing(receiver: FeedReceiver):
    assert sink_for(receiver).send("products", []) == []
    assert receiver.stats()["requests"]["total"] == 0


def test_http_sink_retry_after_reads_seconds_and_http_dates():
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    # an HTTP date without a zone ("-0000") is UTC, not a crash (shared with the REST source)
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 -0000") == 0.0
    assert retry_after_seconds("soon") is None
    assert 20 < (retry_after_seconds(later) or 0) <= 30
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.slow
def test_http_sink_throughput_100k_small_items():
    """Not a timing assertion: prints items/s for the report (`-m slow -s`)."""
    n = int(os.environ.get("SINK_BENCH_ITEMS", "100000"))
    rnd = random.Random(7)
    words = [
        "blue",
        "red",
        "cotton",
        "shirt",
        "jacket",
        "size",
        "large",
        "small",
        "men",
        "women",
        "soft",
        "warm",
        "the",
        "and",
    ]
    batch = []
    for i in range(n):  # about 1 KB of JSON each, text that compresses like real text
        body = {
            "sku": f"SKU-{i:06d}",
            "storeViewCode": "default",
            "name": " ".join(rnd.choices(words, k=160))[:900],
            "price": round(rnd.uniform(1, 200), 2),
            "deleted": False,
            "modifiedAt": WHEN,
        }
        batch.append(OutgoingItem(f"SKU-{i:06d}\x1fdefault", f"h{i}", orjson.dumps(body)))
    with FeedReceiver(api_key=KEY) as r:
        sink = sink_for(r, max_items=1000)
        start = time.perf_counter()
        outcomes = sink.send("products", batch)
        elapsed = time.perf_counter() - start

        assert all(o.status == "sent" for o in outcomes)
        assert len(r.state("products", ENV)) == n
    print(
        f"\nHttpFeedSink -> FeedReceiver: {n} items in {elapsed:.2f}s = {n / elapsed:,.0f} items/s"
    )


def test_http_sink_batch_id_differs_by_scope_so_a_resync_is_applied(receiver: FeedReceiver):
    sink = sink_for(receiver)
    first = items(3)
    resync = [OutgoingItem(i.key, i.hash, i.body, scope="run-2") for i in first]

    assert sink.batch_id("products", first, range(3)) != sink.batch_id("products", resync, range(3))
    sink.send("products", first)
    sink.send("products", resync)

    assert receiver.stats()["items"]["duplicate"] == 0
    assert receiver.stats()["items"]["accepted"] == 6


class Pulled:
    """A stream of items that counts how many were taken from it."""

    def __init__(self, items: list[OutgoingItem]) -> None:
        self.items = items
        self.taken = 0

    def __iter__(self) -> Iterator[OutgoingItem]:
        for i in self.items:
            self.taken += 1
            yield i


def test_http_sink_batches_cut_a_stream_as_send_would_and_take_only_what_they_need(
    receiver: FeedReceiver,
):
    sink = sink_for(receiver, max_items=4, max_bytes=600)
    stream = Pulled(
        [*items(9), item("BIG", pad=700), item("PAD-A", pad=200), item("PAD-B", pad=200)]
    )
    cut = sink.batches("products", stream)
    first = next(cut)
    assert [i.key.split("\x1f")[0] for i in first] == [f"SKU-{i:05d}" for i in range(4)]
    assert stream.taken <= 5  # one item ahead at most
    rest = list(cut)
    assert [len(b) for b in rest] == [4, 3, 1]  # by count, then by bytes; BIG rides along
    for batch in [first, *rest]:
        before = receiver.stats()["requests"]["total"]
        outcomes = sink.send("products", batch)
        assert receiver.stats()["requests"]["total"] - before <= 1  # one request a batch
        if any(i.key.startswith("BIG") for i in batch):
            assert statuses(outcomes)[[i.key for i in batch].index("BIG\x1fdefault")] == "failed"
    assert len(held_skus(receiver)) == 11
