"""Build the dashboard for a target and serve it on 127.0.0.1 with a random token."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from catalog_sync.feeds.registry import all_feeds
from catalogctl.common import Target, queues_of, runner_for
from catalogctl.dashboard.data import Backend
from catalogctl.dashboard.web import create_app
from catalogctl.queues import dlq_depth


def backend_for(target: Target, runner: Any) -> Backend:
    """The same state, snapshot store and DLQ that `catalogctl status` reads."""
    if target.local:
        state, blobs, label = runner.app.state, runner.app.blobs, f"local stack ({runner.endpoint})"
    else:
        from catalog_sync.aws.s3 import S3BlobStore

        state = runner.state()
        blobs = S3BlobStore(runner.session.client("s3"), runner.outputs["SnapshotBucketName"])
        label = f"stack {target.stack}"
    sqs, _, dlq_url = queues_of(target, runner)
    return Backend(state, blobs, all_feeds(), label, dlq=lambda: dlq_depth(sqs, dlq_url))


def serve(
    target: Target,
    host: str,
    port: int,
    echo: Callable[[str], None],
    *,
    runner: Any = None,
) -> tuple[BaseWSGIServer, str]:
    runner = runner or runner_for(target)
    token = secrets.token_urlsafe(24)
    app = create_app(backend_for(target, runner), token, target=target, runner=runner)
    server = make_server(host, port, app, threaded=True)
    url = f"http://{host}:{server.server_port}/?token={token}"
    echo(f"catalog-sync dashboard: {url}")
    return server, url
