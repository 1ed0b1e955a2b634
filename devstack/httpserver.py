"""Plumbing shared by the development stack's fake HTTP servers (feed receiver, fake
Magento, ACO emulator): a werkzeug WSGI app served on a thread, JSON answers, a
dropped connection as a fault.

    server = HttpServer(app, port=0, name="feed-receiver").start()
    server.url            # http://127.0.0.1:<free port>
    server.stop()

`app` is any WSGI callable; `werkzeug.wrappers.Request.application` turns a function
`(request) -> Response` into one. The server is werkzeug's threaded development server:
one thread per connection, quiet (no access log; an app's traceback is still logged),
and every answer closes its connection (werkzeug's server does not keep connections
alive), so `stop()` leaves no idle connection behind.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import orjson
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

__all__ = ["HttpServer", "Request", "Response", "drop_connection", "json_response"]


class _QuietHandler(WSGIRequestHandler):
    disable_nagle_algorithm = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """`body` as JSON (orjson: `orjson.Fragment` pieces are sent as they are)."""
    return Response(orjson.dumps(body), status, headers, content_type="application/json")


def drop_connection(request: Request) -> Response:
    """Close the request's connection without an answer (a fault a client must survive).

    Return the result from the app: werkzeug's attempt to write it fails on the closed
    socket, which its server treats as a client that went away."""
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    return Response(b"", 500)


class HttpServer:
    """A WSGI app on a local port (`port=0`: a free one), served by a daemon thread."""

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        name: str = "http",
        server_version: str | None = None,
    ) -> None:
        handler: type[WSGIRequestHandler] = _QuietHandler
        if server_version:
            handler = type("_Handler", (_QuietHandler,), {"server_version": server_version})
        self.name = name
        self._server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, request_handler=handler
        )
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> HttpServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"{self.name}-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop()` from another one (or Ctrl-C)."""
        try:
            self._server.serve_forever(poll_interval=0.1)
        finally:
            self._server.server_close()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
