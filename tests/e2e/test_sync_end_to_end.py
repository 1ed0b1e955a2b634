"""The whole path over real HTTP: a Magento export CSV → reindex handler → S3,
DynamoDB, SQS on a moto server → export handler → the local feed receiver."""

from __future__ import annotations

import shutil
from pathlib import Path

from devstack import synth
from tests.e2e.conftest import FIXTURES

SMALL = FIXTURES / "catalogs" / "small.csv"
VIEWS = "default:base,fr:base"


def test_e2e_full_resync_delivers_every_sku_and_store_view(make_stack, tmp_path: Path):
    s = make_stack(SMALL, STORE_VIEWS=VIEWS)

    result = s.resync()

    run = result["runs"][0]
    assert run["status"] == "completed"
    held = s.held()
    # 12 products; MS-OFF is only in website eu, which has no store view here
    skus = {sku for sku, _ in held}
    assert "MS-OFF" not in skus
    assert len(skus) == 11
    assert set(held) == {(sku, view) for sku in skus for view in ("default", "fr")}
    # the store-view row overrides the global row in that store view only
    assert held[("MH01", "fr")]["name"] == "Sweat à capuche Chaz Kangourou"
    assert held[("MH01", "default")]["name"] == "Chaz Kangeroo Hoodie"
    assert held[("24-MB01", "fr")]["price"]["regular"] == 36.0
    assert held[("24-MB01", "default")]["price"]["regular"] == 34.0
    # configurable parent knows its variants; children know their parent
    parent = held[("MH01", "default")]
    assert {v["sku"] for v in parent["variants"]} == {
        "MH01-XS-Black",
        "MH01-XS-Gray",
        "MH01-S-Black",
        "MH01-S-Gray",
    }
    assert held[("MH01-S-Gray", "default")]["parentSkus"] == ["MH01"]
    # stock
    assert held[("24-MB04", "default")]["availability"]["inStock"] is False
    assert held[("24-WG086", "default")]["availability"]["qty"] == 100.0
    # every item the state calls sent is held by the receiver
    status = s.runner.app.state
    assert run["counts"]["new"] == len(held)
    assert status.read_meta("products") is not None


def test_e2e_sync_after_edits_sends_exactly_the_touched_items(make_stack, tmp_path: Path):
    catalog = tmp_path / "catalog.csv"
    synth.generate(catalog, 400, seed=3, store_views=("fr",))
    s = make_stack(catalog)  # STORE_VIEWS default: one store view, one item per product
    s.resync()
    before = s.held()

    edited = tmp_path / "edited.csv"
    change = synth.edit(catalog, edited, change_prices=10, remove=5, add=3, seed=5)
    shutil.copy(edited, catalog)
    accepted_before = s.receiver.stats()["items"]["accepted"]
    s.sync()

    sent = s.receiver.stats()["items"]["accepted"] - accepted_before
    assert sent == 18
    after = s.held()
    for sku in change.changed:
        assert after[(sku, "default")]["price"] != before[(sku, "default")]["price"]
    for sku in change.removed:
        assert (sku, "default") not in after
    for sku in change.added:
        assert (sku, "default") in after
    assert len(after) == len(before) - 5 + 3

    accepted_before = s.receiver.stats()["items"]["accepted"]
    result = s.sync()
    assert s.receiver.stats()["items"]["accepted"] == accepted_before
    assert result["runs"][0]["parts_enqueued"] == 0


def test_e2e_no_reindex_resends_the_compiled_feed_with_the_source_gone(make_stack, tmp_path: Path):
    catalog = tmp_path / "catalog.csv"
    shutil.copy(SMALL, catalog)
    s = make_stack(catalog)
    s.resync()
    held = s.held()
    catalog.unlink()
    s.receiver.reset()

    s.resync(noReindex=True)

    assert s.held() == held


def test_e2e_unreadable_rows_are_reported_and_keep_their_items(make_stack, tmp_path: Path):
    catalog = tmp_path / "catalog.csv"
    shutil.copy(SMALL, catalog)
    s = make_stack(catalog)
    s.resync()
    text = catalog.read_text()
    catalog.write_text(text.replace(",14.0000,12.0000,", ",fourteen,12.0000,", 1))

    result = s.sync()

    run = result["runs"][0]
    assert run["counts"]["deleted"] == 0
    assert any(i["sku"] == "24-WG085" and i["field"] == "price" for i in run["issues"])
    assert ("24-WG085", "default") in s.held()
