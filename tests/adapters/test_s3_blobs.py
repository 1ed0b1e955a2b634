"""The S3 BlobStore adapter over the session's moto server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig

from catalog_sync.aws.s3 import S3BlobStore
from catalog_sync.errors import ConfigError, NotFoundError
from devstack.localaws import LocalAws

MiB = 1024 * 1024


def test_s3_blobs_round_trip_with_prefix(aws_clients: Callable[..., LocalAws]) -> None:
    aws = aws_clients()
    store = aws.blobs(prefix="/env-a/")

    store.put_bytes("snapshots/p/r1/manifest.json", b"{}")

    assert store.get_bytes("snapshots/p/r1/manifest.json") == b"{}"
    assert store.exists("snapshots/p/r1/manifest.json")
    raw = aws.s3.get_object(Bucket=aws.names.bucket, Key="env-a/snapshots/p/r1/manifest.json")
    assert raw["Body"].read() == b"{}"
    assert not aws.blobs().exists("snapshots/p/r1/manifest.json")


def test_s3_blobs_open_streams_in_chunks(aws_clients: Callable[..., LocalAws]) -> None:
    store = aws_clients().blobs()
    data = bytes(range(256)) * 4096  # 1 MiB
    store.put_bytes("big.bin", data)

    with store.open("big.bin") as body:
        chunks = iter(lambda: body.read(64 * 1024), b"")
        got = b"".join(chunks)

    assert got == data


def test_s3_blobs_put_file_uses_multipart_above_threshold(
    aws_clients: Callable[..., LocalAws], tmp_path: Path
) -> None:
    aws = aws_clients()
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    store = S3BlobStore(aws.s3, aws.names.bucket, transfer_config=config)
    path = tmp_path / "part.gz"
    path.write_bytes(b"x" * (6 * MiB))

    store.put_file("parts/p.gz", path)

    head = aws.s3.head_object(Bucket=aws.names.bucket, Key="parts/p.gz")
    assert head["ContentLength"] == 6 * MiB
    assert head["ETag"].strip('"').endswith("-2")  # two parts
    assert store.get_bytes("parts/p.gz") == path.read_bytes()


def test_s3_blobs_missing_key_raises_not_found(aws_clients: Callable[..., LocalAws]) -> None:
    store = aws_clients().blobs()
    with pytest.raises(NotFoundError, match=r"s3://catalog-sync-snapshots-\w+/nope"):
        store.get_bytes("nope")
    with pytest.raises(NotFoundError):
        store.open("nope")
    assert not store.exists("nope")


def test_s3_blobs_missing_bucket_raises_config_error(
    aws_clients: Callable[..., LocalAws], tmp_path: Path
) -> None:
    aws = aws_clients()
    store = S3BlobStore(aws.s3, "no-such-bucket-here")
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with pytest.raises(ConfigError, match="no-such-bucket-here"):
        store.put_bytes("k", b"x")
    with pytest.raises(ConfigError, match="no-such-bucket-here"):
        store.get_bytes("k")
    with pytest.raises(ConfigError, match="no-such-bucket-here"):
        store.put_file("k", path)


def test_s3_blobs_list_pages_and_delete_in_batches(
    aws_clients: Callable[..., LocalAws], monkeypatch: pytest.MonkeyPatch
) -> None:
    aws = aws_clients()
    store = aws.blobs(prefix="env-b")
    keys = [f"snapshots/p/r{i // 10}/part-{i:04d}.jsonl.gz" for i in range(25)]
    for key in keys:
        store.put_bytes(key, b"x")
    store.put_bytes("runs/p/r1/issues.jsonl", b"x")
    aws.blobs().put_bytes("snapshots/p/outside-the-prefix", b"x")

    pages = aws.s3.get_paginator("list_objects_v2")
    monkeypatch.setattr(
        aws.s3,
        "get_paginator",
        lambda name: _SmallPages(pages) if name == "list_objects_v2" else None,
    )
    assert sorted(store.list_keys("snapshots/p/")) == keys

    monkeypatch.setattr("catalog_sync.aws.s3.DELETE_BATCH", 7)
    store.delete_keys([*keys[:20], "snapshots/p/never-existed"])
    assert sorted(store.list_keys("")) == ["runs/p/r1/issues.jsonl", *keys[20:]]
    assert aws.blobs().exists("snapshots/p/outside-the-prefix")


class _SmallPages:
    """The real paginator, 4 keys a page: the listing must follow the pages."""

    def __init__(self, paginator: object) -> None:
        self.paginator = paginator

    def paginate(self, **kwargs: object) -> object:
        return self.paginator.paginate(**kwargs, PaginationConfig={"PageSize": 4})  # type: ignore[attr-defined]
