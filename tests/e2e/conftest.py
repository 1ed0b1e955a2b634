from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.local import LocalRunner, LocalStack
from devstack.localaws import ResourceNames

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


class Stack:
    """A local stack (fresh resources, own receiver) and a runner over it."""

    def __init__(self, stack: LocalStack, **env: str) -> None:
        self.stack = stack
        self.env = {**stack.env, **env}
        self.runner = LocalRunner(self.env)
        assert stack.receiver is not None
        self.receiver = stack.receiver

    def sync(self, **event: object) -> dict:
        result = self.runner.reindex({"action": "sync", **event})
        self.runner.drain()
        return result

    def resync(self, feed: str = "products", **event: object) -> dict:
        result = self.runner.reindex({"action": "resync", "feed": feed, **event})
        self.runner.drain()
        return result

    def held(self, feed: str = "products") -> dict[tuple[str, str], dict]:
        items = self.receiver.state(feed, self.env["SAAS_ENVIRONMENT_ID"])
        return {(i["sku"], i["storeViewCode"]): i for i in items}


@pytest.fixture
def make_stack(moto_endpoint: str) -> Iterator:
    started: list[LocalStack] = []

    def make(source: Path | str | None = None, receiver_max_items: int = 1000, **env: str) -> Stack:
        stack = LocalStack(
            aws_endpoint=moto_endpoint,
            names=ResourceNames.unique(),
            source=str(source) if source else None,
            receiver_max_items=receiver_max_items,
        )
        stack.start()
        started.append(stack)
        return Stack(stack, **env)

    yield make
    for s in started:
        s.stop()
