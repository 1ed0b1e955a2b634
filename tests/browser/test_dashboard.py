"""The dashboard in a real browser (Debian's chromium driven by Playwright) against the
local stack after real syncs. Skipped, saying why, where no browser is installed.
Screenshots of each page go to .artifacts/dashboard/ (gitignored)."""

from __future__ import annotations

import os
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from catalogctl.common import Target
from catalogctl.dashboard.server import serve
from tests.e2e.faults import Product, state_records, write_catalog

CHROMIUM = os.environ.get("CATALOG_SYNC_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "dashboard"
VENDOR = (
    Path(__file__).resolve().parents[2] / "catalogctl/dashboard/static/vendor/uPlot.iife.min.js"
)

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"no browser at {CHROMIUM}"),
    pytest.mark.skipif(not VENDOR.exists(), reason="chart library missing: make dashboard-assets"),
]
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def test_dashboard_in_a_browser(make_stack, tmp_path: Path, monkeypatch):
    products = {f"SKU-{i:03d}": Product(f"Product {i}", 10.0 + i) for i in range(12)}
    catalog = tmp_path / "catalog.csv"
    write_catalog(catalog, products, sorted(products))
    s = make_stack(catalog)
    s.receiver.add_fault({"reject": {"sku": ["SKU-007", "SKU-002"]}})
    s.sync()
    s.receiver.clear_faults()
    records = state_records(s.runner.app)
    expected_failed = sum(1 for r in records.values() if r.status.value == "failed")
    assert expected_failed >= 1

    server, url = serve(
        Target(local=True, stack="", region=None), "127.0.0.1", 0, print, runner=s.runner
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = url.split("/?")[0]
    try:
        # no token, a wrong token, a POST without the form token: refused
        for bad in (base + "/", base + "/?token=nope", base + "/items?feed=products"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(bad)
            assert err.value.code == 403
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            assert "token" not in page.url
            card = page.locator('section.card[data-feed="products"]')
            assert card.locator('[data-count="items"]').inner_text() == f"{len(records):,}"
            sent = sum(1 for r in records.values() if r.status.value == "sent")
            assert card.locator('[data-count="sent"]').inner_text() == f"{sent:,}"
            assert card.locator('[data-count="failed"]').inner_text() == f"{expected_failed:,}"
            assert "rejected by the SaaS service" in card.inner_text()
            shot(page, "overview")

            page.goto(base + "/runs?feed=products")
            assert page.locator("#runs tbody tr").count() >= 1
            assert page.locator("#chart-counts canvas").count() == 1
            shot(page, "runs")

            page.goto(base + "/items?feed=products&mode=sku&q=sku-003")
            rows = page.locator("#items tbody tr[data-key]")
            assert rows.count() >= 1
            assert all("SKU-003" in rows.nth(i).inner_text() for i in range(rows.count()))
            assert '"sku": "SKU-003"' in page.locator("pre.json").first.inner_text()
            shot(page, "items")

            page.goto(base + "/failures?feed=products")
            text = page.locator("#failures").inner_text()
            assert "SKU-007" in text and "rejected by the fault plan" in text
            shot(page, "failures")
            # sorted on the server (every failing item, not one page): by item, then reversed
            page.click('#failures th a:text-is("item")')
            first = page.locator("#failures tbody tr").first
            assert "SKU-002" in first.inner_text() and "sort=item" in page.url
            page.click('#failures th a:has-text("item")')
            assert "SKU-007" in page.locator("#failures tbody tr").first.inner_text()
            assert "dir=desc" in page.url

            # an action: resend failed (the receiver accepts SKU-007 now)
            page.goto(base + "/actions")
            shot(page, "actions")
            page.click('[data-action="resend-failed-products"]')
            page.click("#confirm")
            sync_api.expect(page.locator("#job-status")).not_to_have_text("running", timeout=60_000)
            assert page.locator("#job-status").inner_text() == "succeeded", page.content()
            shot(page, "action-result")
            after = state_records(s.runner.app)
            assert not any(r.status.value == "failed" for r in after.values())
            page.goto(base + "/")
            assert card.locator('[data-count="failed"]').inner_text() == "0"

            # the mass-deletion guard: a header-only export is held, confirming applies it
            write_catalog(catalog, products, [])
            held = s.sync()["runs"]
            assert {r["feed"]: r["status"] for r in held}["products"] == "held"
            page.goto(base + "/")
            assert "held by the mass-deletion guard" in card.inner_text()
            page.goto(base + "/actions")
            page.click('[data-action="confirm-deletions-products"]')
            assert "catalogctl resync --feed products --confirm-deletions" in page.content()
            shot(page, "confirm-deletions")
            page.click("#confirm")
            sync_api.expect(page.locator("#job-status")).not_to_have_text("running", timeout=60_000)
            assert page.locator("#job-status").inner_text() == "succeeded", page.content()
            live = [k for k in after if k.startswith("SKU-")]
            assert f"deleted {len(live)}," in page.locator("#job-lines").inner_text()
            shot(page, "confirm-deletions-result")
            gone = state_records(s.runner.app)
            assert all(gone[k].deleted for k in live)
            assert len(s.held()) == 0  # the receiver deleted them
            page.goto(base + "/")
            assert card.locator('[data-count="deleted"]').inner_text() == f"{len(live):,}"
            assert "held by the mass-deletion guard" not in card.inner_text()
            page.goto(base + "/actions")
            assert page.locator('[data-action="confirm-deletions-products"]').count() == 0
            browser.close()
        # another client with no cookie cannot act
        req = urllib.request.Request(base + "/actions/redrive/run", data=b"token=x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req)
        assert err.value.code == 403
    finally:
        server.shutdown()
