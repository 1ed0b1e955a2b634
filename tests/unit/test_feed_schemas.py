"""The builders' dicts cannot drift from the feed models, and the dict path of
`encode` hashes exactly as the model path and the canonical form say."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog_sync.feeds.registry import get_feed
from catalog_sync.feeds.spec import BuildContext
from catalog_sync.records import Rejected
from catalog_sync.sources.magento_csv import MagentoCsvSource
from catalog_sync.sources.magento_csv.cells import _plain_attributes, _quoted_attributes
from catalog_sync.sync.canonical import canonical_bytes, content_hash, encode
from devstack import synth
from tests.fakes import FEEDS
from tests.unit.feed_check import checked

SMALL = Path(__file__).parent.parent / "fixtures" / "catalogs" / "small.csv"
# Inside a special-price window for some synthetic products, outside for others.
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
VIEWS = (("default", "base"), ("fr", "base"), ("de", "base"))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "catalog.csv"
    synth.generate(path, 150, seed=7, store_views=("fr", "de"))
    return path


def _check_catalog(path: Path, feeds: frozenset[str]) -> int:
    ctx = BuildContext(now=NOW, store_views=VIEWS, feeds=feeds)
    n = 0
    for record in MagentoCsvSource(str(path)).read():
        if isinstance(record, Rejected):
            continue
        for name in FEEDS:
            spec = get_feed(name)
            for data in spec.build(record, ctx):
                item = checked(spec.model, data)
                # the dict path and the model path give one hash and one key
                a, b = encode(spec, data), encode(spec, item)
                assert (a.key, a.group, a.hash) == (b.key, b.group, b.hash)
                assert orjson.loads(a.body) == orjson.loads(b.body)
                n += 1
    return n


@pytest.mark.parametrize("prices_apart", [False, True])
def test_feed_schemas_builders_match_models_on_small_catalog(prices_apart: bool) -> None:
    feeds = frozenset(FEEDS if prices_apart else ("products",))
    assert _check_catalog(SMALL, feeds) > 0


def test_feed_schemas_builders_match_models_on_synthetic_catalog(synthetic: Path) -> None:
    assert _check_catalog(synthetic, frozenset({"products"})) > 150
    assert _check_catalog(synthetic, frozenset(FEEDS)) > 150


def test_feed_schemas_encode_hash_is_sorted_canonical_form_without_modified_at() -> None:
    spec = get_feed("inventoryStockStatus")
    item = {
        "deleted": False,
        "modifiedAt": NOW,
        "stockId": "1",
        "sku": "A",
        "qty": 5.0,
        "isInStock": True,
        "isSalable": True,
        "lowStock": False,
        "manageStock": None,
    }
    enc = encode(spec, item)
    assert enc.hash == content_hash(canonical_bytes(item))
    reordered = dict(reversed(list(item.items())))
    reordered["modifiedAt"] = datetime(2030, 1, 1, tzinfo=UTC)
    assert encode(spec, reordered).hash == enc.hash  # order and modifiedAt do not count
    assert orjson.loads(enc.body) == orjson.loads(orjson.dumps(item))
    assert enc.body.endswith(b',"modifiedAt":"2025-06-01T12:00:00+00:00"}')
    assert encode(spec, {**item, "qty": 5}).hash != enc.hash  # builders must give floats


def test_feed_schemas_tombstone_encodes_as_sorted_dict() -> None:
    spec = get_feed("products")
    stone = spec.tombstone("A\x1ffr", NOW)
    enc = encode(spec, stone)
    assert enc.key == "A\x1ffr" and enc.group == "A"
    assert enc.hash == content_hash(b'{"deleted":true,"sku":"A","storeViewCode":"fr"}')


_text = st.text(alphabet="ab=,|_ xé\n", max_size=40)


@settings(max_examples=500)
@given(_text)
def test_feed_schemas_plain_attribute_parser_matches_the_general_one(cell: str) -> None:
    assert _plain_attributes(cell) == _quoted_attributes(cell)
