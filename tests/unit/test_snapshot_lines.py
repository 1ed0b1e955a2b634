"""Part lines are cut apart without parsing the item; any key survives."""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from pathlib import Path

import orjson
import pytest

from catalog_sync.sync import snapshot
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


def _lines_of(n: int) -> bytes:
    return b"".join(
        encode_line(EncodedItem(key=f"K{i}", group="", hash=f"{i:032x}", body=b'{"i":%d}' % i))
        for i in range(n)
    )


@pytest.mark.parametrize("chunk", [1, 5, 64, 1 << 18])
def test_read_part_reads_as_gzip_does_whatever_the_chunks(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "READ_CHUNK", chunk)
    raw = _lines_of(300)
    half = raw.index(b"\n", len(raw) // 2) + 1
    for blob in (
        gzip.compress(raw),
        gzip.compress(raw.rstrip(b"\n")),  # no newline at the end
        gzip.compress(raw[:half]) + b"\0\0" + gzip.compress(raw[half:]),  # two members
        gzip.compress(b""),
        b"",
    ):
        with gzip.GzipFile(fileobj=io.BytesIO(blob)) as gz:
            expected = [split_line(line) for line in gz if line.strip()]
        assert list(read_part(io.BytesIO(blob))) == expected


def test_read_part_of_a_truncated_or_corrupt_object_raises() -> None:
    blob = gzip.compress(_lines_of(300))
    with pytest.raises(EOFError):
        list(read_part(io.BytesIO(blob[:-4])))
    corrupt = bytearray(blob)
    corrupt[-8] ^= 1  # the CRC
    with pytest.raises(zlib.error):
        list(read_part(io.BytesIO(bytes(corrupt))))


@pytest.mark.parametrize("chunk", [1, 100, 1 << 18])
def test_part_writer_writes_every_line_in_order_whatever_its_chunks(
    chunk: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Lines go to gzip `WRITE_CHUNK` bytes at a time: the part holds them all, in
    order, across chunk ends and with the last chunk unfinished at `close`."""
    monkeypatch.setattr(snapshot, "WRITE_CHUNK", chunk)
    items = [
        EncodedItem(key=f"K{i}", group="", hash=f"{i:032x}", body=b'{"i":%d}' % i)
        for i in range(301)
    ]
    writer = snapshot.PartWriter(tmp_path / "part.jsonl.gz")
    for item in items:
        writer.write(item)
    size, sha = writer.close()
    blob = (tmp_path / "part.jsonl.gz").read_bytes()
    assert gzip.decompress(blob) == b"".join(encode_line(i) for i in items)
    assert writer.items == 301 and size == len(blob)
    assert sha == hashlib.sha256(blob).hexdigest()
