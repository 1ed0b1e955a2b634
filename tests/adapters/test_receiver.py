"""The local feed receiver, over real HTTP (port 0)."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import requests

from devstack.receiver import IDENTITY, FaultPlanError, FeedReceiver

KEY = "receiver-test-key"
ENV = "env-1"
WHEN = "2024-05-01T10:00:00+00:00"


@pytest.fixture
def receiver() -> Iterator[FeedReceiver]:
    with FeedReceiver(api_key=KEY) as r:
        yield r


def product(sku: str, view: str = "default", **extra: Any) -> dict[str, Any]:
    return {"sku": sku, "storeViewCode": view, "deleted": False, "modifiedAt": WHEN, **extra}


def post(
    r: FeedReceiver,
    items: Any,
    *,
    feed: str = "products",
    key: str | None = KEY,
    request_id: str | None = None,
    gzipped: bool = True,
    raw: bytes | None = None,
) -> requests.Response:
    body = raw if raw is not None else orjson.dumps(items)
    headers = {"Content-Type": "application/json"}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    if key is not None:
        headers["x-api-key"] = key
    if request_id is not None:
        headers["x-request-id"] = request_id
    return requests.post(f"{r.url}/feeds/{feed}/{ENV}", data=body, headers=headers, timeout=10)


def held(r: FeedReceiver, feed: str = "products") -> dict[tuple[str, str], dict[str, Any]]:
    resp = requests.get(f"{r.url}/_state/{feed}/{ENV}", timeout=10)
    assert resp.status_code == 200
    data = resp.json()
    assert data["count"] == len(data["items"])
    return {tuple(i[f] for f in IDENTITY[feed]): i for i in data["items"]}


def test_receiver_applies_a_gzip_batch_and_serves_the_state(receiver: FeedReceiver):
    resp = post(receiver, [product("A", price=1.5), product("B"), product("A", "fr")])

    assert resp.status_code == 200
    assert resp.json() == {"invalidFeedItems": []}
    state = held(receiver)
    assert set(state) == {("A", "default"), ("B", "default"), ("A", "fr")}
    assert state["A", "default"]["price"] == 1.5
    assert len(receiver.state("products", ENV)) == 3
    assert receiver.state("products", "other-env") == []


def test_receiver_accepts_an_uncompressed_body(receiver: FeedReceiver):
    resp = post(receiver, [product("A")], gzipped=False)

    assert resp.status_code == 200
    assert set(held(receiver)) == {("A", "default")}


def test_receiver_keeps_one_current_version_and_deletes(receiver: FeedReceiver):
    post(receiver, [product("A", price=1.0), product("B")])
    post(receiver, [product("A", price=2.0)])
    post(receiver, [{"sku": "B", "storeViewCode": "default", "deleted": True, "modifiedAt": WHEN}])

    state = held(receiver)
    assert set(state) == {("A", "default")}
    assert state["A", "default"]["price"] == 2.0


def test_receiver_missing_key_is_401_and_wrong_key_is_403(receiver: FeedReceiver):
    missing = post(receiver, [product("A")], key=None)
    wrong = post(receiver, [product("A")], key="not-the-key")

    assert missing.status_code == 401
    assert missing.json()["code"] == "missing_api_key"
    assert wrong.status_code == 403
    assert wrong.json()["code"] == "invalid_api_key"
    assert "not-the-key" not in wrong.text
    assert held(receiver) == {}


def test_receiver_repeated_request_id_is_accepted_without_reapplying(receiver: FeedReceiver):
    post(receiver, [product("A", price=1.0)], request_id="batch-1")

    again = post(receiver, [product("A", price=9.0)], request_id="batch-1")

    assert again.status_code == 200
    assert again.json() == {"invalidFeedItems": []}
    assert held(receiver)["A", "default"]["price"] == 1.0
    items = receiver.stats()["items"]
    assert items["accepted"] == 1
    assert items["duplicate"] == 1


def test_receiver_batch_with_invalid_items_is_not_remembered(receiver: FeedReceiver):
    first = post(receiver, [product("A"), {"sku": "B"}], request_id="batch-2")
    again = post(receiver, [product("A"), product("B")], request_id="batch-2")

    assert len(first.json()["invalidFeedItems"]) == 1
    assert again.json() == {"invalidFeedItems": []}
    assert set(held(receiver)) == {("A", "default"), ("B", "default")}


def test_receiver_over_the_item_limit_is_413():
    with FeedReceiver(api_key=KEY, max_items=3) as r:
        resp = post(r, [product(str(i)) for i in range(4)])
        ok = post(r, [product(str(i)) for i in range(3)])

        assert resp.status_code == 413
        assert resp.json()["code"] == "items_limit_exceeded"
        assert "4 items" in resp.json()["message"]
        assert ok.status_code == 200
        assert len(held(r)) == 3
        assert r.stats()["items"]["refused"] == 4


@pytest.mark.parametrize("gzipped", [True, False])
def test_receiver_over_the_byte_limit_is_413(gzipped: bool):
    with FeedReceiver(api_key=KEY, max_bytes=500) as r:
        big = [product(str(i), name="x" * 50) for i in range(10)]
        resp = post(r, big, gzipped=gzipped)

        assert resp.status_code == 413
        assert resp.json()["code"] == "items_limit_exceeded"
        assert "500 bytes" in resp.json()["message"]
        assert post(r, big[:2], gzipped=gzipped).status_code == 200


@pytest.mark.parametrize("feed", sorted(IDENTITY))
def test_receiver_reports_items_without_identity_and_applies_the_rest(
    receiver: FeedReceiver, feed: str
):
    identity = IDENTITY[feed]
    good = {f: f"{f}-1" for f in identity} | {"deleted": False, "modifiedAt": WHEN}
    other = {f: f"{f}-2" for f in identity} | {"deleted": False, "modifiedAt": WHEN}
    lacking = {k: v for k, v in good.items() if k != identity[-1]}

    resp = post(receiver, [good, lacking, other], feed=feed)

    assert resp.status_code == 200
    [bad] = resp.json()["invalidFeedItems"]
    assert bad["itemIndex"] == 1
    assert bad["code"] == "missing_field"
    assert repr(identity[-1]) in bad["message"]
    assert "item 1" in bad["message"]
    assert len(held(receiver, feed)) == 2


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"deleted": "no"}, "deleted"),
        ({"deleted": None}, "deleted"),
        ({"modifiedAt": "yesterday"}, "modifiedAt"),
        ({"modifiedAt": 1714557600}, "modifiedAt"),
        ({"sku": ""}, "sku"),
        ({"sku": None}, "sku"),
    ],
)
def test_receiver_reports_bad_field_values_naming_item_and_field(
    receiver: FeedReceiver, change: dict[str, Any], field: str
):
    resp = post(receiver, [product("A"), product("B") | change])

    [bad] = resp.json()["invalidFeedItems"]
    assert bad["itemIndex"] == 1
    assert bad["code"] == "invalid_value"
    assert repr(field) in bad["message"]
    assert set(held(receiver)) == {("A", "default")}


def test_receiver_reports_missing_deleted_and_modified_at(receiver: FeedReceiver):
    no_deleted = {"sku": "B", "storeViewCode": "default", "modifiedAt": WHEN}
    no_modified = {"sku": "C", "storeViewCode": "default", "deleted": True}

    resp = post(receiver, [no_deleted, product("A"), no_modified, "not an object"])

    bad = {b["itemIndex"]: b for b in resp.json()["invalidFeedItems"]}
    assert set(bad) == {0, 2, 3}
    assert "'deleted' is missing" in bad[0]["message"]
    assert "sku=B" in bad[0]["message"]
    assert "'modifiedAt' is missing" in bad[2]["message"]
    assert bad[3]["code"] == "invalid_item"


@pytest.mark.parametrize(
    ("raw", "gzipped", "says"),
    [
        (b"{not json", True, "not valid JSON"),
        (b'{"sku": "A"}', True, "JSON array"),
        (b"", False, "not valid JSON"),
    ],
)
def test_receiver_malformed_body_is_400(
    receiver: FeedReceiver, raw: bytes, gzipped: bool, says: str
):
    resp = post(receiver, None, raw=raw, gzipped=gzipped)

    assert resp.status_code == 400
    assert resp.json()["code"] == "malformed_body"
    assert says in resp.json()["message"]


def test_receiver_body_that_is_not_gzip_is_400(receiver: FeedReceiver):
    resp = requests.post(
        f"{receiver.url}/feeds/products/{ENV}",
        data=b"[]",
        headers={"x-api-key": KEY, "Content-Encoding": "gzip"},
        timeout=10,
    )

    assert resp.status_code == 400
    assert "gzip" in resp.json()["message"]


def test_receiver_unknown_feed_is_404(receiver: FeedReceiver):
    resp = post(receiver, [product("A")], feed="nope")

    assert resp.status_code == 404
    assert resp.json()["code"] == "unknown_feed"


def test_receiver_status_faults_apply_in_order_then_clear(receiver: FeedReceiver):
    requests.post(f"{receiver.url}/_faults", json={"status": 503, "times": 2}, timeout=5)
    requests.post(
        f"{receiver.url}/_faults", json={"status": 429, "times": 1, "retry_after": 1}, timeout=5
    )

    statuses = [post(receiver, [product("A")]) for _ in range(4)]

    assert [r.status_code for r in statuses] == [503, 503, 429, 200]
    assert statuses[2].headers["Retry-After"] == "1"
    assert set(held(receiver)) == {("A", "default")}


def test_receiver_fault_400_and_413_answer_their_codes(receiver: FeedReceiver):
    receiver.add_fault({"status": 400})
    receiver.add_fault({"status": 413})

    first = post(receiver, [product("A")])
    second = post(receiver, [product("A")])

    assert first.status_code == 400
    assert second.status_code == 413
    assert second.json()["code"] == "items_limit_exceeded"


def test_receiver_reject_fault_holds_until_cleared(receiver: FeedReceiver):
    requests.post(f"{receiver.url}/_faults", json={"reject": {"sku": ["MH01-XS-Black"]}}, timeout=5)

    first = post(receiver, [product("A"), product("MH01-XS-Black")])
    second = post(receiver, [product("MH01-XS-Black")])
    requests.delete(f"{receiver.url}/_faults", timeout=5)
    third = post(receiver, [product("MH01-XS-Black")])

    [bad] = first.json()["invalidFeedItems"]
    assert bad == {
        "itemIndex": 1,
        "code": "rejected",
        "message": bad["message"],
    }
    assert "MH01-XS-Black" in bad["message"]
    assert len(second.json()["invalidFeedItems"]) == 1
    assert third.json()["invalidFeedItems"] == []
    assert set(held(receiver)) == {("A", "default"), ("MH01-XS-Black", "default")}


def test_receiver_drop_connection_closes_without_answer(receiver: FeedReceiver):
    receiver.add_fault({"drop_connection": 1})

    with pytest.raises(requests.ConnectionError):
        post(receiver, [product("A")])
    after = post(receiver, [product("A")])

    assert after.status_code == 200
    assert receiver.stats()["requests"]["dropped"] == 1
    assert set(held(receiver)) == {("A", "default")}


def test_receiver_latency_fault_then_answers(receiver: FeedReceiver):
    receiver.add_fault({"latency_ms": 200})

    started = time.monotonic()
    assert post(receiver, [product("A")]).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_receiver_bad_fault_plan_is_400(receiver: FeedReceiver):
    resp = requests.post(f"{receiver.url}/_faults", json={"status": 200}, timeout=5)
    unknown = requests.post(f"{receiver.url}/_faults", json={"explode": True}, timeout=5)

    assert resp.status_code == 400
    assert unknown.status_code == 400
    assert "explode" in unknown.json()["message"]
    with pytest.raises(FaultPlanError):
        receiver.add_fault({"times": 2})


def test_receiver_stats_count_requests_items_and_bytes_by_status_and_feed(
    receiver: FeedReceiver,
):
    post(receiver, [product("A"), {"sku": "X"}])
    post(receiver, [product("A")], key="wrong")
    post(
        receiver,
        [
            {
                "sku": "S",
                "customerGroupCode": "0",
                "websiteCode": "base",
                "deleted": False,
                "modifiedAt": WHEN,
            }
        ],
        feed="prices",
    )

    stats = requests.get(f"{receiver.url}/_stats", timeout=5).json()

    assert stats["requests"] == {"total": 3, "200": 2, "403": 1}
    assert stats["items"]["received"] == 3
    assert stats["items"]["accepted"] == 2
    assert stats["items"]["invalid"] == 1
    assert stats["bytes"]["total"] == stats["bytes"]["200"] + stats["bytes"]["403"]
    assert stats["bytes"]["uncompressed"] > 0
    assert stats["feeds"]["products"]["requests"]["total"] == 2
    assert stats["feeds"]["prices"]["items"]["accepted"] == 1


def test_receiver_delete_state_forgets_items_batches_and_stats(receiver: FeedReceiver):
    post(receiver, [product("A")], request_id="b1")

    assert requests.delete(f"{receiver.url}/_state", timeout=5).status_code == 200

    assert held(receiver) == {}
    assert receiver.stats()["requests"]["total"] == 0
    post(receiver, [product("A")], request_id="b1")  # not a duplicate any more
    assert set(held(receiver)) == {("A", "default")}


def test_receiver_handles_concurrent_posts(receiver: FeedReceiver):
    codes: list[int] = []

    def worker(n: int) -> None:
        with requests.Session() as s:
            for batch in range(5):
                items = [product(f"{n}-{batch}-{i}") for i in range(20)]
                resp = s.post(
                    f"{receiver.url}/feeds/products/{ENV}",
                    data=orjson.dumps(items),
                    headers={"x-api-key": KEY, "x-request-id": f"{n}-{batch}"},
                    timeout=10,
                )
                codes.append(resp.status_code)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert codes == [200] * 40  # asserted here: a failure in a thread fails nothing
    assert len(receiver.state("products", ENV)) == 8 * 5 * 20
    assert receiver.stats()["items"]["accepted"] == 800


def test_receiver_runs_standalone_from_the_command_line():
    env = {**os.environ, "RECEIVER_API_KEY": KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.receiver", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" on ")[1].split()[0]
        resp = requests.post(
            f"{url}/feeds/products/{ENV}",
            data=orjson.dumps([product("A")]),
            headers={"x-api-key": KEY},
            timeout=10,
        )
        assert resp.status_code == 200
        assert len(requests.get(f"{url}/_state/products/{ENV}", timeout=5).json()["items"]) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
