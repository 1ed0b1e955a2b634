"""The broken-catalog corpus: each bad input gets a clear issue (line, SKU, field),
valid rows still come through, and `complete` says whether deletions are safe."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog_sync.catalog import CatalogProduct
from catalog_sync.errors import SourceError
from catalog_sync.records import ReadReport, Rejected
from catalog_sync.sources.magento_csv import MagentoCsvSource

BROKEN = Path(__file__).parent.parent / "fixtures" / "catalogs" / "broken"


def read_all(path: Path) -> tuple[list[CatalogProduct], list[Rejected], ReadReport]:
    source = MagentoCsvSource(str(path))
    entries = list(source.read())
    products = [e for e in entries if isinstance(e, CatalogProduct)]
    rejected = [e for e in entries if isinstance(e, Rejected)]
    return products, rejected, source.report()


def skus(products: list[CatalogProduct]) -> list[str]:
    return sorted(p.sku for p in products)


def only_issue(rejected: Rejected) -> tuple[int | None, str | None, str | None, str]:
    assert len(rejected.issues) == 1, rejected.issues
    i = rejected.issues[0]
    return i.line, i.sku, i.field, i.message


def test_corpus_unclosed_quote_rejects_record_and_marks_read_incomplete() -> None:
    products, rejected, report = read_all(BROKEN / "unclosed_quote.csv")
    assert skus(products) == ["A-1"]
    assert [r.sku for r in rejected] == ["B-2"]
    line, sku, _field, message = only_issue(rejected[0])
    assert (line, sku) == (3, "B-2")
    assert "unclosed quote" in message and "line 5" in message
    assert report.complete is False
    assert any("unclosed quote" in i.message for i in report.issues)


def test_corpus_missing_sku_column_raises_source_error() -> None:
    with pytest.raises(SourceError, match=r"no .sku. column.*line 1 has 3 fields") as info:
        read_all(BROKEN / "missing_sku_column.csv")
    assert "price" not in str(info.value)  # no file content in errors (issue 10)


def test_corpus_duplicate_sku_rejects_that_product_only() -> None:
    products, rejected, report = read_all(BROKEN / "duplicate_skus.csv")
    assert skus(products) == ["B-2", "C-3"]
    assert [r.sku for r in rejected] == ["A-1"]
    line, sku, field, message = only_issue(rejected[0])
    assert (line, sku, field) == (4, "a-1", "sku")
    assert "duplicate" in message and "first at line 2" in message
    assert report.complete is True


@pytest.mark.parametrize(
    ("name", "field", "bad"),
    [("bad_price.csv", "price", "12,50 EUR"), ("bad_qty.csv", "qty", "lots")],
)
def test_corpus_non_numeric_value_rejects_product(name: str, field: str, bad: str) -> None:
    products, rejected, report = read_all(BROKEN / name)
    assert skus(products) == ["A-1", "C-3"]
    line, sku, got_field, message = only_issue(rejected[0])
    assert (line, sku, got_field) == (3, "B-2", field)
    assert "not a number" in message and bad in message
    assert report.complete is True
    assert report.rows == 3


def test_corpus_invalid_utf8_rejects_row_and_reads_the_rest() -> None:
    products, rejected, report = read_all(BROKEN / "invalid_utf8.csv")
    assert skus(products) == ["A-1", "C-3"]
    line, sku, field, message = only_issue(rejected[0])
    assert (line, sku, field) == (3, "B-2", "name")
    assert "UTF-8" in message
    assert rejected[0].sku == "B-2"
    assert report.complete is True


def test_corpus_truncated_file_is_incomplete() -> None:
    products, rejected, report = read_all(BROKEN / "truncated.csv")
    assert skus(products) == ["A-1", "B-2"]
    line, sku, _field, message = only_issue(rejected[0])
    assert (line, sku) == (4, "C-3")
    assert "truncated" in message
    assert report.complete is False


def test_corpus_empty_file_raises_source_error() -> None:
    with pytest.raises(SourceError, match="empty"):
        read_all(BROKEN / "empty.csv")


def test_corpus_header_only_is_complete_with_no_records() -> None:
    products, rejected, report = read_all(BROKEN / "header_only.csv")
    assert (products, rejected) == ([], [])
    assert report.complete is True
    assert (report.rows, report.records) == (0, 0)


def test_corpus_unknown_product_type_rejects_product() -> None:
    products, rejected, report = read_all(BROKEN / "unknown_type.csv")
    assert skus(products) == ["A-1", "C-3"]
    line, sku, field, message = only_issue(rejected[0])
    assert (line, sku, field) == (3, "B-2", "product_type")
    assert "bundle-pack" in message
    assert report.complete is True


def test_corpus_row_without_sku_is_rejected_without_sku() -> None:
    products, rejected, report = read_all(BROKEN / "missing_sku_value.csv")
    assert skus(products) == ["A-1", "C-3"]
    assert rejected[0].sku is None
    assert only_issue(rejected[0])[:3] == (3, None, "sku")
    assert report.complete is True


def test_corpus_store_view_rows_without_global_row_are_rejected() -> None:
    products, rejected, _report = read_all(BROKEN / "no_global_row.csv")
    assert skus(products) == ["A-1", "C-3"]
    assert only_issue(rejected[0])[:3] == (3, "B-2", "store_view_code")


def test_corpus_unparseable_date_is_a_warning_not_a_rejection() -> None:
    products, rejected, report = read_all(BROKEN / "bad_date.csv")
    assert rejected == []
    assert products[0].values.special_from is None
    assert products[0].values.special_price == 5.0
    [warning] = report.issues
    assert warning.severity == "warning"
    assert (warning.line, warning.sku, warning.field) == (2, "A-1", "special_price_from_date")
    assert report.complete is True


def test_corpus_huge_description_is_accepted(tmp_path: Path) -> None:
    description = "<p>" + "x" * (10 * 1024 * 1024) + "\n</p>"
    path = tmp_path / "huge.csv"
    path.write_text(
        f'sku,name,description,price\nA-1,Alpha,"{description}",10\nB-2,Beta,short,20\n',
        encoding="utf-8",
    )
    products, rejected, report = read_all(path)
    assert rejected == []
    assert skus(products) == ["A-1", "B-2"]
    assert products[0].values.description == description
    assert report.complete is True
