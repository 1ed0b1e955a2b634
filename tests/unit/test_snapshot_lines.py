"""Part lines are cut apart without parsing the item; any key survives."""

from __future__ import annotations

import gzip
import io

import orjson
import pytest

from catalog_sync.sync.canonical import EncodedItem
from catalog_sync.sync.snapshot import encode_line, read_part, split_line

KEYS = [
    "SKU-1\x1fdefault",
    'has "quotes"\x1fde',
    'tricky ,"h":"abc","i":{}\x1ffr',
    "back\\slash\\\x1fdefault",
    "ünïcødé ✓\x1fdefault",
    "tab\tnew\nline\x1fdefault",
]


@pytest.mark.parametrize("key", KEYS)
def test_line_round_trip(key: str) -> None:
    body = orjson.dumps({"sku": key, "name": 'a "b", c', "n": [1.5, {"x": None}]})
    item = EncodedItem(key=key, group="", hash="0123456789abcdef0123456789abcdef", body=body)
    line = encode_line(item)
    assert split_line(line) == (key, item.hash, body)
    # the same as parsing the whole line
    rec = orjson.loads(line)
    assert (rec["k"], rec["h"], orjson.dumps(rec["i"])) == split_line(line)


def test_foreign_line_is_parsed() -> None:
    line = b'{"h": "ff", "i": {"a": 1}, "k": "K"}\n'  # not in encode_line's layout
    assert split_line(line) == ("K", "ff", b'{"a":1}')


def test_read_part_skips_blank_lines() -> None:
    items = [
        EncodedItem(key=k, group="", hash=f"{i:032x}", body=b'{"i":%d}' % i)
        for i, k in enumerate(KEYS)
    ]
    raw = (
        b"".join(encode_line(i) for i in items[:3])
        + b"\n"
        + b"".join(encode_line(i) for i in items[3:])
    )
    got = list(read_part(io.BytesIO(gzip.compress(raw))))
    assert got == [(i.key, i.hash, i.body) for i in items]
