"""The development stack's shared HTTP plumbing, over real HTTP (port 0)."""

from __future__ import annotations

import pytest
import requests

from devstack.httpserver import HttpServer, Request, Response, drop_connection, json_response


@Request.application
def app(request: Request) -> Response:
    if request.path == "/drop":
        return drop_connection(request)
    return json_response(201, {"path": request.path}, {"X-Extra": "1"})


def test_serves_json_on_a_free_port_and_stops():
    with HttpServer(app, name="t", server_version="test-server/1") as server:
        assert server.port > 0
        resp = requests.get(f"{server.url}/a/b", timeout=5)

        assert resp.status_code == 201
        assert resp.json() == {"path": "/a/b"}
        assert resp.headers["Content-Type"] == "application/json"
        assert resp.headers["X-Extra"] == "1"
        assert resp.headers["Server"].startswith("test-server/1")
        url = server.url

    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/a", timeout=5)


def test_drop_connection_answers_nothing_and_the_server_goes_on():
    with HttpServer(app) as server:
        with pytest.raises(requests.ConnectionError):
            requests.post(f"{server.url}/drop", data=b"x" * 1000, timeout=5)

        assert requests.get(f"{server.url}/after", timeout=5).status_code == 201
