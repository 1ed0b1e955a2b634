"""The state's compression: zstd frames written, zlib streams (earlier versions) read."""

from __future__ import annotations

import hashlib
import threading
import zlib

import orjson
import pytest

from catalog_sync.infra import codec


def _state_json(n: int) -> bytes:
    return orjson.dumps(
        {
            f"products:sku-{i}:default": [hashlib.md5(str(i).encode()).hexdigest(), "sent", 0, None]
            for i in range(n)
        }
    )


@pytest.mark.parametrize(
    "data",
    [b"", b"x", b"\x28\xb5\x2f\xfd", _state_json(2000)],
    ids=["empty", "byte", "magic", "state"],
)
def test_pack_writes_a_zstd_frame_that_unpack_reads(data: bytes) -> None:
    packed = codec.pack(data)
    assert packed[:4] == codec.ZSTD_MAGIC
    assert codec.unpack(packed) == data


@pytest.mark.parametrize("level", [1, 6, 9])
def test_unpack_reads_the_zlib_streams_earlier_versions_wrote(level: int) -> None:
    data = _state_json(500)
    assert codec.unpack(zlib.compress(data, level)) == data


def test_unpack_refuses_what_is_neither() -> None:
    with pytest.raises(zlib.error):
        codec.unpack(b"not compressed at all")
    with pytest.raises(Exception, match=r"(?i)frame|zstd|data"):
        codec.unpack(codec.ZSTD_MAGIC + b"\x00garbage")


def test_threads_pack_and_unpack_at_once() -> None:
    """Each thread has its own compressor: a shared one may not be used at once."""
    blobs = [_state_json(300 + 50 * i) for i in range(6)]
    errors: list[BaseException] = []

    def work(data: bytes) -> None:
        try:
            for _ in range(30):
                assert codec.unpack(codec.pack(data)) == data
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(b,)) for b in blobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
