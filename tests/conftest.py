"""Shared fixtures: one moto server (real HTTP) per test session (per xdist worker).

`moto_endpoint` gives the server's URL and sets no environment. `aws_clients()`
provisions fresh, uniquely named resources on it (bucket, table, queue + DLQ,
secret) and returns a `LocalAws`: `.s3`, `.dynamodb`, `.sqs`, `.secretsmanager`,
`.ssm` clients, `.names`, `.queue_url`, and adapters `.blobs()`, `.state()`,
`.queue()`. Do not use moto's in-process `mock_aws` in the same session: it resets
the state this server serves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from devstack.localaws import (
    LocalAws,
    MotoServerHandle,
    ResourceNames,
    provision,
    start_moto_server,
)

TEST_API_KEY = "test-api-key-0123456789"


_servers: list[MotoServerHandle] = []  # this session's moto server, once started


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = start_moto_server()
    _servers.append(server)
    try:
        yield server.endpoint_url
    finally:
        server.stop()


@pytest.fixture(scope="module", autouse=True)
def _moto_reset_after_each_module() -> Iterator[None]:
    """The moto server runs in this process and keeps every resource the tests made:
    at over 2 GB late in a session, garbage collection took most of a test's time.
    Each module's resources are forgotten when it ends (a module-scoped fixture may
    share them between its tests)."""
    yield
    for server in _servers:
        server.reset()


@pytest.fixture
def aws_clients(moto_endpoint: str) -> Callable[..., LocalAws]:
    """A factory: `aws_clients(api_key=...)` -> `LocalAws` over fresh resources."""

    def make(api_key: str = TEST_API_KEY) -> LocalAws:
        names = ResourceNames.unique()
        provision(names, moto_endpoint, api_key)
        return LocalAws.connect(moto_endpoint, names)

    return make
