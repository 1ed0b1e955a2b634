"""The ACO sink against the local ACO emulator, over HTTP."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator

import orjson
import pytest
import requests

from catalog_sync.errors import AuthError
from catalog_sync.ports import OutgoingItem
from catalog_sync.sinks.aco import auth, wire
from catalog_sync.sinks.aco.auth import ImsTokens
from catalog_sync.sinks.aco.sink import AcoSink
from devstack.aco_emulator import LOCAL_CLIENT_ID, LOCAL_CLIENT_SECRET, AcoEmulator

LOCALE = "en"


def item(doc: dict) -> OutgoingItem:
    body = orjson.dumps(doc)
    return OutgoingItem(key=str(doc.get("sku") or doc.get("code")), hash="h", body=body)


def product(sku: str, **extra: object) -> dict:
    return {
        "sku": sku,
        "source": {"locale": LOCALE},
        "name": sku,
        "slug": sku.lower(),
        "status": "ENABLED",
        **extra,
    }


def metadata(code: str) -> dict:
    return {"code": code, "source": {"locale": LOCALE}, "label": code, "dataType": "TEXT"}


@pytest.fixture
def emulator() -> Iterator[AcoEmulator]:
    auth.clear_cache()
    with AcoEmulator() as emu:
        yield emu
    auth.clear_cache()


def tokens(emu: AcoEmulator, secret: str = LOCAL_CLIENT_SECRET, **kw: object) -> ImsTokens:
    return ImsTokens(
        lambda: {"clientId": LOCAL_CLIENT_ID, "clientSecret": secret}, ims_url=emu.ims_url, **kw
    )  # type: ignore[arg-type]


def sink(emu: AcoEmulator, toks: ImsTokens | None = None, **kw: object) -> AcoSink:
    kw.setdefault("sleep", lambda s: None)
    return AcoSink(emu.base_url, toks or tokens(emu), **kw)  # type: ignore[arg-type]


def with_metadata(s: AcoSink, *codes: str) -> None:
    codes = (*wire.REQUIRED_METADATA, *codes)
    out = s.send("metadata", [item(metadata(c)) for c in codes])
    assert [o.status for o in out] == ["sent"] * len(codes)


def test_batch_of_100_with_2_invalid_lands_98(emulator: AcoEmulator) -> None:
    s = sink(emulator)
    with_metadata(s, "color")
    docs = [product(f"P{i}", attributes=[{"code": "color", "values": ["red"]}]) for i in range(100)]
    docs[10]["status"] = "active"
    docs[57]["attributes"] = [{"code": "color", "values": [7]}]
    out = s.send("aco-products", [item(d) for d in docs])
    failed = {i: o.reason for i, o in enumerate(out) if o.status == "failed"}
    assert set(failed) == {10, 57}
    assert sum(o.status == "sent" for o in out) == 98
    assert "status:" in str(failed[10]) and "'active'" in str(failed[10])
    assert failed[57] is not None and "attributes.0.values.0" in failed[57] and "'7'" in failed[57]
    held = {p["sku"] for p in emulator.state()["products"]}
    assert len(held) == 98 and "P10" not in held and "P57" not in held
    assert emulator.stats()["statuses"] == {"200": 2, "400": 1}


def test_token_reused_and_refreshed_once_after_401(emulator: AcoEmulator) -> None:
    toks = tokens(emulator)
    s = sink(emulator, toks)
    with_metadata(s)
    s.send("products", [item(product("A"))])
    assert emulator.stats()["tokensIssued"] == 1  # reused across calls
    # a second object for the same client (a warm invocation) reuses the cached token
    sink(emulator).send("products", [item(product("B"))])
    assert emulator.stats()["tokensIssued"] == 1
    emulator.expire_tokens()
    out = s.send("products", [item(product("C"))])
    assert [o.status for o in out] == ["sent"]
    assert emulator.stats()["tokensIssued"] == 2
    assert emulator.stats()["statuses"]["401"] == 1


def test_token_refreshed_five_minutes_before_expiry(emulator: AcoEmulator) -> None:
    now = [1000.0]
    toks = tokens(emulator, clock=lambda: now[0])
    toks.token()
    now[0] += 86400 - 301
    toks.token()
    assert emulator.stats()["tokensIssued"] == 1
    now[0] += 2  # within 5 minutes of expiry
    toks.token()
    assert emulator.stats()["tokensIssued"] == 2


def test_wrong_credentials_auth_error_without_secret(emulator: AcoEmulator) -> None:
    s = sink(emulator, tokens(emulator, secret="wrong-secret-xyz"))
    with pytest.raises(AuthError) as info:
        s.send("products", [item(product("A"))])
    assert "wrong-secret-xyz" not in str(info.value)


def test_second_401_and_403_raise(emulator: AcoEmulator) -> None:
    class Stale:
        def token(self) -> str:
            return "not-a-token"

        def invalidate(self, token: str) -> None:
            pass

    with pytest.raises(AuthError, match="401"):
        AcoSink(emulator.base_url, Stale()).send("products", [item(product("A"))])

    class Empty(Stale):
        def token(self) -> str:
            return ""

    with pytest.raises(AuthError, match="403"):
        AcoSink(emulator.base_url, Empty()).send("products", [item(product("A"))])
    assert emulator.state()["products"] == []


def test_429_waits_retry_after(emulator: AcoEmulator) -> None:
    s = sink(emulator)
    with_metadata(s)
    waits: list[float] = []
    s = sink(emulator, sleep=waits.append)
    emulator.add_fault({"status": 429, "retry_after": 2, "times": 2})
    assert [o.status for o in s.send("products", [item(product("A"))])] == ["sent"]
    assert waits == [2.0, 2.0]


def test_5xx_retried_then_left_pending(emulator: AcoEmulator) -> None:
    s = sink(emulator, max_tries=3)
    with_metadata(s)
    emulator.add_fault({"status": 503, "times": 2})
    assert [o.status for o in s.send("products", [item(product("A"))])] == ["sent"]
    emulator.add_fault({"status": 502, "times": 10})
    out = s.send(
        "products",
        [item(product("B")), item(product("C"))],
    )
    assert [o.status for o in out] == ["retry", "retry"]
    assert "HTTP 502 after 3 tries" in str(out[0].reason)


def test_dropped_connection_retried(emulator: AcoEmulator) -> None:
    s = sink(emulator)
    with_metadata(s)
    emulator.add_fault({"drop_connection": 1})
    assert [o.status for o in s.send("products", [item(product("A"))])] == ["sent"]
    assert [p["sku"] for p in emulator.state()["products"]] == ["A"]


def test_oversize_product_fails_with_size_never_sent(emulator: AcoEmulator) -> None:
    s = sink(emulator)
    with_metadata(s)
    big = item(product("BIG", description="x" * 210_000))
    out = s.send("products", [big, item(product("OK"))])
    assert out[0].status == "failed" and str(len(big.body)) in str(out[0].reason)
    assert out[1].status == "sent"
    assert [p["sku"] for p in emulator.state()["products"]] == ["OK"]


def test_body_is_gzip_and_deletes_go_to_delete(emulator: AcoEmulator) -> None:
    seen: list[tuple[str, str, bytes]] = []
    session = requests.Session()
    original = session.post

    def spy(url: str, **kw: object) -> requests.Response:
        seen.append((url, str(kw["headers"]["Content-Encoding"]), kw["data"]))  # type: ignore[index]
        return original(url, **kw)  # type: ignore[arg-type]

    session.post = spy  # type: ignore[method-assign]
    s = sink(emulator, session=session)
    with_metadata(s)
    s.send("products", [item(product("A")), item({"sku": "B", "source": {"locale": LOCALE}})])
    urls = [u for u, _, _ in seen]
    assert urls[-2].endswith("/v1/catalog/products/delete") and urls[-1].endswith(
        "/v1/catalog/products"
    )
    assert all(enc == "gzip" for _, enc, _ in seen)
    assert orjson.loads(gzip.decompress(seen[-2][2])) == [
        {"sku": "B", "source": {"locale": LOCALE}}
    ]
    assert emulator.stats()["accepted"]["products/delete"] == 1


def test_batch_sizes(emulator: AcoEmulator) -> None:
    s = sink(emulator, batch_sizes={"prices": 3})
    docs = [{"sku": f"S{i}", "priceBookId": "base", "regular": 1.5} for i in range(7)]
    s.send("prices", [item(d) for d in docs])
    assert [r["items"] for r in emulator.requests] == [3, 3, 1]


def test_pacing_counted_at_emulator(emulator: AcoEmulator, aws_clients) -> None:  # type: ignore[no-untyped-def]
    from catalog_sync.aws.pacing import DynamoPacer

    aws = aws_clients()
    s0 = sink(emulator)
    with_metadata(s0)

    # moto applies a conditional update non-atomically (two threads can both pass the
    # condition: measured 3-4 of 20 racing takes of a 2-slot window); DynamoDB applies
    # each one atomically. One lock around the call stands in for that atomicity; the
    # two senders are otherwise concurrent (own pacer, sink, session, thread).
    lock = threading.Lock()

    class Atomic:
        def update_item(self, **kw: object) -> object:
            with lock:
                return aws.dynamodb.update_item(**kw)

        def get_item(self, **kw: object) -> object:
            with lock:
                return aws.dynamodb.get_item(**kw)

    def run(prefix: str) -> None:
        pacer = DynamoPacer(Atomic(), aws.names.table, "t1", max_rps=2, max_wait=30)
        s = AcoSink(emulator.base_url, tokens(emulator), pacer=pacer, batch_sizes={"products": 1})
        out = s.send("products", [item(product(f"{prefix}{i}")) for i in range(5)])
        assert [o.status for o in out] == ["sent"] * 5

    before = dict(emulator.windows)
    threads = [threading.Thread(target=run, args=(p,)) for p in "XY"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    paced = {w: n - before.get(w, 0) for w, n in emulator.windows.items() if n - before.get(w, 0)}
    assert sum(paced.values()) == 10
    assert max(paced.values()) <= 2


def test_product_budget_hands_back(emulator: AcoEmulator, aws_clients) -> None:  # type: ignore[no-untyped-def]
    """A budget of 3 products a window and batches of 2: the first batch goes whole,
    the second only as far as the budget goes, the rest comes back `paced:` with the
    time the next window opens."""
    from catalog_sync.aws.pacing import DynamoPacer

    aws = aws_clients()
    s0 = sink(emulator)
    with_metadata(s0)
    pacer = DynamoPacer(
        aws.dynamodb,
        aws.names.table,
        "t2",
        max_rps=100,
        max_products_per_minute=3,
        clock=lambda: 600.0,
    )
    s = AcoSink(emulator.base_url, tokens(emulator), pacer=pacer, batch_sizes={"products": 2})
    out = s.send("products", [item(product(f"Q{i}")) for i in range(5)])
    assert [o.status for o in out] == ["sent", "sent", "sent", "retry", "retry"]
    assert str(out[3].reason).startswith("paced:")
    assert [r["items"] for r in emulator.requests[-2:]] == [2, 1]
    assert s.take_paced() == 660.0  # the next minute
    assert s.take_paced() is None


def test_budget_smaller_than_a_batch_is_never_exceeded(emulator: AcoEmulator, aws_clients) -> None:  # type: ignore[no-untyped-def]
    """Batches of 100 under a budget of 7 a window: 7 products go, not 100."""
    from catalog_sync.aws.pacing import DynamoPacer

    aws = aws_clients()
    with_metadata(sink(emulator))
    now = [1200.0]
    pacer = DynamoPacer(
        aws.dynamodb,
        aws.names.table,
        "t3",
        max_rps=100,
        max_products_per_minute=7,
        clock=lambda: now[0],
    )
    s = AcoSink(emulator.base_url, tokens(emulator), pacer=pacer)
    docs = [item(product(f"R{i}")) for i in range(20)]
    sent: list[int] = []
    for _ in range(3):  # three windows
        out = s.send("products", docs)
        sent.append(sum(o.status == "sent" for o in out))
        docs = [d for d, o in zip(docs, out, strict=True) if o.status != "sent"]
        now[0] += 60
    assert sent == [7, 7, 6]
    assert len(emulator.state()["products"]) == 20
    assert emulator.stats()["accepted"]["products"] == 20  # none twice


def test_ims_unreachable_leaves_items_pending(emulator: AcoEmulator) -> None:
    toks = ImsTokens(
        lambda: {"clientId": "c", "clientSecret": "s"}, ims_url=emulator.url + "/ims/missing"
    )
    out = AcoSink(emulator.base_url, toks).send("products", [item(product("A"))])
    assert [o.status for o in out] == ["retry"]
    assert "HTTP 404" in str(out[0].reason)


def test_aco_batches_keep_deletions_apart_at_the_entity_size(emulator: AcoEmulator) -> None:
    s = sink(emulator, batch_sizes={"products": 3})
    upserts = [item(product(f"P{i}")) for i in range(7)]
    deletes = [
        OutgoingItem(f"D{i}", "h", orjson.dumps({"sku": f"D{i}", "source": {"locale": LOCALE}}))
        for i in range(4)
    ]
    stream = [upserts[0], deletes[0], *upserts[1:4], *deletes[1:], *upserts[4:]]
    cut = list(s.batches("products", stream))
    kinds = [{i.key[0] for i in b} for b in cut]
    assert kinds == [{"P"}, {"D"}, {"P"}, {"D"}, {"P"}]  # full ones as they fill, deletes first
    assert [len(b) for b in cut] == [3, 3, 3, 1, 1]
    assert sorted(i.key for b in cut for i in b) == sorted(i.key for i in stream)
