"""Every feed-meta write is made under the feed's lease (issue 8): a run that takes
the lease just after another released it keeps its latest manifest and run id."""

from __future__ import annotations

import uuid
from typing import Any

from catalog_sync.app import run_reindex_event
from catalog_sync.aws.dynamodb import DynamoFeedState
from devstack.magento_server import MagentoApiServer
from tests.e2e.conftest import FIXTURES

SMALL = FIXTURES / "catalogs" / "small.csv"
TOKEN = "magento-token-0123456789"


def test_a_run_between_lease_release_and_a_late_meta_write_keeps_its_manifest(
    make_stack, monkeypatch
):
    secret = f"magento-token-{uuid.uuid4().hex[:8]}"
    with MagentoApiServer(SMALL, token=TOKEN, store_views=("default",)) as shop:
        s = make_stack(None, CATALOG_SOURCE=shop.url, MAGENTO_TOKEN_SECRET_ID=secret)
        app = s.runner.app
        app.client("secretsmanager").create_secret(Name=secret, SecretString=TOKEN)
        leases: dict[str, str] = {}
        unleased_writes: list[str] = []
        released = {"once": False}
        other: dict[str, Any] = {}

        real_acquire, real_release = DynamoFeedState.acquire_lease, DynamoFeedState.release_lease
        real_read, real_write = DynamoFeedState.read_meta, DynamoFeedState.write_meta

        def acquire(self, feed, holder, now, ttl):
            real_acquire(self, feed, holder, now, ttl)
            leases[feed] = holder

        def release(self, feed, holder):
            real_release(self, feed, holder)
            leases.pop(feed, None)
            released["once"] = True

        def write_meta(self, meta):
            if meta.feed not in leases:
                unleased_writes.append(meta.last_run_id or "")
            real_write(self, meta)

        def read_meta(self, feed):
            meta = real_read(self, feed)
            if released["once"] and not other and feed not in leases:
                # another run takes the lease right now, between this read and
                # whatever write may follow it
                other["started"] = True
                other.update(run_reindex_event({"action": "resync", "feed": feed}, app))
            return meta

        monkeypatch.setattr(DynamoFeedState, "acquire_lease", acquire)
        monkeypatch.setattr(DynamoFeedState, "release_lease", release)
        monkeypatch.setattr(DynamoFeedState, "read_meta", read_meta)
        monkeypatch.setattr(DynamoFeedState, "write_meta", write_meta)

        first = run_reindex_event({"action": "sync"}, app)["runs"][0]
        if not other:  # the other run comes right after the first released its lease
            other.update(run_reindex_event({"action": "resync", "feed": "products"}, app))
        second = other["runs"][0]

        assert first["status"] == second["status"] == "completed"
        meta = real_read(app.state, "products")
        assert meta is not None
        assert meta.last_run_id == second["run_id"]
        assert meta.latest_manifest == second["manifest"]
        assert meta.source_watermark is not None and meta.last_full_read is not None
        assert unleased_writes == []
