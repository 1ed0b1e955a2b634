"""The digest of a CSV source's bytes (`sources.magento_csv.digest`): what it covers,
and the identity that tells a later write, local and on S3 (moto over HTTP)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from catalog_sync.sources.inventory import StockDef
from catalog_sync.sources.magento_csv import MagentoCsvSource, digest

HEADER = "sku,name,price\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_the_digest_covers_the_bytes_the_stock_file_and_the_mapping_context(tmp_path: Path):
    cat = write(tmp_path / "c.csv", HEADER + "A,Alpha,1\n")
    stock = tmp_path / "stock_sources.csv"
    plain = MagentoCsvSource(str(cat), stock_sources=str(stock), stock_sources_optional=True)
    first = plain.content()
    assert first is not None and first.identity[1] == f"absent:{stock}"
    assert plain.content() == first  # the same bytes, the same digest and identity

    write(stock, "source_code,sku,status,quantity\ndefault,A,1,1\n")
    with_stock = plain.content()
    assert with_stock is not None and with_stock.digest != first.digest
    views = MagentoCsvSource(
        str(cat), stock_sources=str(stock), stock_sources_optional=True, store_views=["fr"]
    )
    stocks = MagentoCsvSource(
        str(cat), stock_sources=str(stock), stock_sources_optional=True,
        stocks=[StockDef("2", ("eu",), ("eu",))],
    )  # fmt: skip
    digests = {s.content().digest for s in (views, stocks)}  # type: ignore[union-attr]
    assert len(digests | {with_stock.digest}) == 3

    write(cat, HEADER + "A,Alphb,1\n")  # one byte, the same size
    changed = plain.content()
    assert changed is not None and changed.digest != with_stock.digest
    assert MagentoCsvSource(str(tmp_path / "missing.csv")).content() is None


def test_a_write_after_the_digest_changes_the_identity(tmp_path: Path):
    cat = write(tmp_path / "c.csv", HEADER + "A,Alpha,1\n")
    old = os.stat(cat).st_mtime_ns - 10**10
    os.utime(cat, ns=(old, old))  # mtime can be set back; ctime cannot
    source = MagentoCsvSource(str(cat))
    seen = source.content()
    assert seen is not None and source.identity() == seen.identity
    write(cat, HEADER + "A,Alphb,1\n")
    os.utime(cat, ns=(old, old))
    assert source.identity() != seen.identity


def test_a_file_written_within_the_settle_time_cannot_pin_its_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    cat = write(tmp_path / "c.csv", HEADER + "A,Alpha,1\n")
    monkeypatch.setattr(digest, "SETTLE_SECONDS", 3600.0)
    fresh = MagentoCsvSource(str(cat)).content()
    assert fresh is not None and not fresh.settled
    monkeypatch.setattr(digest, "SETTLE_SECONDS", 0.0)
    assert MagentoCsvSource(str(cat)).content().settled  # type: ignore[union-attr]


def test_an_s3_object_is_streamed_and_identified_by_its_version(aws_clients, tmp_path: Path):
    aws = aws_clients()
    bucket = aws.names.bucket
    aws.s3.put_object(Bucket=bucket, Key="c.csv", Body=(HEADER + "A,Alpha,1\n").encode())
    uri = f"s3://{bucket}/c.csv"
    source = MagentoCsvSource(uri, s3_client=aws.s3)
    local = MagentoCsvSource(str(write(tmp_path / "c.csv", HEADER + "A,Alpha,1\n"))).content()
    seen = source.content()
    assert seen is not None and local is not None and seen.digest == local.digest
    assert source.identity() == seen.identity
    aws.s3.put_object(Bucket=bucket, Key="c.csv", Body=(HEADER + "A,Alphb,1\n").encode())
    assert source.identity() != seen.identity
    assert source.content().digest != seen.digest  # type: ignore[union-attr]
    assert MagentoCsvSource(f"s3://{bucket}/none.csv", s3_client=aws.s3).content() is None
