"""A REST read that stops at a page and goes on in another invocation (issue 10),
against the Magento emulator over real HTTP: the catalog is edited in between
(products changed, removed and added), and the read goes on after the last
`entity_id` it read. No product that exists throughout is lost or read twice, and
the read stays complete (its deletions are right)."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog_sync.catalog import CatalogProduct
from catalog_sync.sources.magento_rest import MagentoRestSource
from devstack.magento_server import MagentoApiServer
from devstack.synth import edit, generate

TOKEN = "magento-token-resume"


def source(shop: MagentoApiServer, **kw: object) -> MagentoRestSource:
    return MagentoRestSource(shop.url, lambda: TOKEN, page_size=10, sleep=lambda _s: None, **kw)  # type: ignore[arg-type]


def skus(entries: list[object]) -> list[str]:
    return [e.sku for e in entries if isinstance(e, CatalogProduct)]


def test_a_read_goes_on_after_its_cursor_whatever_was_edited_meanwhile(tmp_path: Path) -> None:
    before = tmp_path / "before.csv"
    generate(before, 200, seed=4)
    after = tmp_path / "after.csv"
    result = edit(before, after, change_prices=5, remove=12, add=6, seed=9)
    with MagentoApiServer(before, token=TOKEN) as shop:
        whole = source(shop)
        everything = [e for page in whole.pages() for e in page.entries]
        first_pages = []
        reader = source(shop).pages()
        for page in reader:  # an invocation that reads eight pages, then hands on
            first_pages.extend(page.entries)
            if len(first_pages) >= 80:
                cursor = page.cursor
                break
        reader.close()
        assert cursor is not None and not page.final

        shop.load(after)  # edits between the two invocations
        rest = source(shop)
        later = [e for page in rest.pages(after=cursor) for e in page.entries]

    read = skus(first_pages) + skus(later)
    assert len(read) == len(set(read)), "a product was read twice"
    kept = set(skus(everything)) - set(result.removed)
    assert kept <= set(read), f"lost: {sorted(kept - set(read))}"
    assert set(result.added) <= set(read)  # created meanwhile: their ids come after
    assert rest.report().complete
    assert rest.report().rows == len(later)
    removed_before = set(result.removed) & set(skus(first_pages))
    removed_after = set(result.removed) - removed_before
    assert removed_before and removed_after  # deletions on both sides of the cursor
    assert not removed_after & set(read)


def test_only_a_full_read_goes_on_after_an_entity_id(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    generate(path, 5, seed=1)
    with MagentoApiServer(path, token=TOKEN) as shop:
        src = source(shop)
        assert src.resumable() and not src.resumable(["a"])
        with pytest.raises(ValueError, match="full read"):
            next(src.pages(skus=["a"], after=3))
