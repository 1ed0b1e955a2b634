"""Hostile events and files against the reindex handler (issue 10, item 1): refused,
never read, nothing of a file's content in the error, the run record or the logs."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from catalog_sync.errors import CatalogSyncError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SMALL = FIXTURES / "catalogs" / "small.csv"
TOKEN = "magento-token-0123456789"
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]]
    location: str = ""

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        if self.location:
            self.send_response(302)
            self.send_header("Location", self.location + self.path)
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"items": [], "total_count": 0}')

    def log_message(self, *args: object) -> None:
        pass


def _server(location: str = "") -> tuple[HTTPServer, type[_Recorder]]:
    handler = type("H", (_Recorder,), {"seen": [], "location": location})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


def _refused(s, event: dict) -> str:
    """The handler answers a refused request with a result, not a function error."""
    result = s.runner.reindex(event)
    assert result["status"] == "refused" and result["runs"] == [], result
    reason: str = result["reason"]
    return reason


def _failed(s, event: dict) -> str:
    """The configured source itself is wrong: a function error (the alarm should fire)."""
    with pytest.raises(CatalogSyncError) as info:
        s.runner.reindex(event)
    return str(info.value)


@pytest.mark.parametrize(
    "hostile",
    [
        "/proc/self/environ",
        "file:///proc/self/environ",
        "file:/proc/self/environ",
        "s3://other-bucket/catalog.csv",
    ],
)
def test_hostile_event_sources_are_refused(make_stack, hostile: str) -> None:
    s = make_stack(SMALL, CATALOG_SOURCE_ALLOW="")  # a deployed stack: no local allowance
    for action in ({"action": "sync"}, {"action": "resync", "feed": "products"}):
        message = _refused(s, {**action, "source": hostile})
        assert "refused" in message and hostile in message
    assert s.runner.app.state.list_runs("products") == []  # nothing ran


def test_an_event_cannot_send_the_token_to_another_host(make_stack) -> None:
    other, seen = _server()
    shop, shop_seen = _server()
    try:
        s = make_stack(
            None, CATALOG_SOURCE=f"http://127.0.0.1:{shop.server_port}",
            MAGENTO_TOKEN_SECRET_ID="magento-token-other",
        )  # fmt: skip
        s.runner.app.client("secretsmanager").create_secret(
            Name="magento-token-other", SecretString=TOKEN
        )
        message = _refused(
            s, {"action": "sync", "source": f"http://127.0.0.1:{other.server_port}/"}
        )
        assert "configured shop only" in message
        assert seen.seen == [] and shop_seen.seen == []
    finally:
        other.shutdown()
        shop.shutdown()


def test_a_redirecting_shop_gets_no_second_request_with_the_token(make_stack) -> None:
    other, seen = _server()
    shop, shop_seen = _server(location=f"http://localhost:{other.server_port}")
    try:
        s = make_stack(
            None, CATALOG_SOURCE=f"http://127.0.0.1:{shop.server_port}",
            MAGENTO_TOKEN_SECRET_ID="magento-token-redirect", MAGENTO_MAX_TRIES="1",
        )  # fmt: skip
        s.runner.app.client("secretsmanager").create_secret(
            Name="magento-token-redirect", SecretString=TOKEN
        )
        message = _failed(s, {"action": "sync"})
        assert "redirect" in message and "not followed" in message
        assert shop_seen.seen and all(auth == f"Bearer {TOKEN}" for _, auth in shop_seen.seen)
        assert seen.seen == []  # the redirect target never heard of us
    finally:
        other.shutdown()
        shop.shutdown()


def test_a_file_that_is_not_a_catalog_leaks_none_of_its_content(make_stack, tmp_path: Path) -> None:
    environ = tmp_path / "environ"
    environ.write_bytes(
        f"AWS_ACCESS_KEY_ID=AKIAEXAMPLE\0AWS_SECRET_ACCESS_KEY={SECRET}\0HOME=/root\0".encode()
    )
    s = make_stack(environ)
    message = _failed(s, {"action": "sync"})
    assert "no 'sku' column" in message
    assert SECRET not in message and "AKIAEXAMPLE" not in message and "AWS_" not in message
    for run in s.runner.app.state.list_runs("products"):
        assert SECRET not in run.model_dump_json()
