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

from devstack.localaws import LocalAws, ResourceNames, provision, start_moto_server

TEST_API_KEY = "test-api-key-0123456789"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = start_moto_server()
    try:
        yield server.endpoint_url
    finally:
        server.stop()


@pytest.fixture
def aws_clients(moto_endpoint: str) -> Callable[..., LocalAws]:
    """A factory: `aws_clients(api_key=...)` -> `LocalAws` over fresh resources."""

    def make(api_key: str = TEST_API_KEY) -> LocalAws:
        names = ResourceNames.unique()
        provision(names, moto_endpoint, api_key)
        return LocalAws.connect(moto_endpoint, names)

    return make
