"""devstack.synth: the synthetic Magento export generator and its edits."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog_sync.errors import SourceError
from devstack import synth

STORE_VIEW_CELLS = {"sku", "store_view_code", "attribute_set_code", "product_type"}
STORE_VIEW_OVERRIDES = {"name", "description", "url_key"}


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = []
        for number, cells in enumerate(reader, start=1):
            assert len(cells) == len(header), f"record {number} has {len(cells)} cells"
            rows.append(dict(zip(header, cells, strict=True)))
    return header, rows


def global_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [r for r in rows if not r["store_view_code"]]


def raw_records(path: Path) -> dict[tuple[str, str], str]:
    out = {}
    for number, raw, fields in synth.iter_records(path):
        if number:
            out[(fields[0], fields[1])] = raw
    return out


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, synth.SynthStats]:
    path = tmp_path_factory.mktemp("synth") / "catalog.csv"
    stats = synth.generate(path, 1500, seed=7, websites=("base", "eu"))
    return path, stats


# -- generate ---------------------------------------------------------------------------------


def test_generate_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"

    synth.generate(a, 400, seed=42)
    synth.generate(b, 400, seed=42)
    synth.generate(c, 400, seed=43)

    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


@pytest.mark.parametrize("products", [0, 1, 3, 4, 5, 13, 250, 1001])
def test_generate_writes_exact_product_count(tmp_path: Path, products: int) -> None:
    path = tmp_path / "c.csv"

    stats = synth.generate(path, products, seed=products)

    _, rows = read_rows(path)
    skus = [r["sku"] for r in global_rows(rows)]
    assert len(skus) == len(set(skus)) == products == stats.products
    assert stats.rows == len(rows)
    assert stats.store_view_rows == len(rows) - products
    assert stats.bytes == path.stat().st_size
    assert stats.configurables + stats.children + stats.simples + stats.virtuals == products


def test_generate_writes_the_export_header_and_fputcsv_records(
    catalog: tuple[Path, synth.SynthStats],
) -> None:
    path, _ = catalog
    data = path.read_bytes()

    header, rows = read_rows(path)

    assert tuple(header) == synth.EXPORT_COLUMNS
    assert header[:6] == [
        "sku",
        "store_view_code",
        "attribute_set_code",
        "product_type",
        "categories",
        "product_websites",
    ]
    assert b"\r" not in data and data.endswith(b"\n")
    assert data.count(b"\n") > len(rows) + 1  # descriptions hold raw newlines
    assert ',"Taxable Goods","Catalog, Search",' in data.decode()  # spaces are enclosed
    assert '""all-day""' in data.decode()  # enclosures doubled


def test_generate_lists_children_before_their_parent(
    catalog: tuple[Path, synth.SynthStats],
) -> None:
    path, stats = catalog
    _, rows = read_rows(path)
    seen: set[str] = set()
    by_sku = {r["sku"]: r for r in global_rows(rows)}
    parents = 0

    for row in global_rows(rows):
        if row["product_type"] == "configurable":
            parents += 1
            entries = row["configurable_variations"].split("|")
            assert 3 <= len(entries) <= 12, row["sku"]
            for entry in entries:
                pairs = dict(p.split("=", 1) for p in entry.split(","))
                child = by_sku[pairs["sku"]]  # every listed variant exists
                assert pairs["sku"] in seen, f"{pairs['sku']} after parent {row['sku']}"
                assert child["product_type"] == "simple"
                assert child["visibility"] == "Not Visible Individually"
                assert f"size={pairs['size']}" in child["additional_attributes"]
                assert f"color={pairs['color']}" in child["additional_attributes"]
            assert row["configurable_variation_labels"] == "size=Size,color=Color"
        seen.add(row["sku"])
    assert parents == stats.configurables > 0


def test_generate_makes_about_70_percent_children(catalog: tuple[Path, synth.SynthStats]) -> None:
    _, stats = catalog

    assert 0.62 <= stats.children / stats.products <= 0.78
    assert stats.virtuals > 0 and stats.simples > 0


def test_generate_store_view_rows_are_sparse_overrides(
    catalog: tuple[Path, synth.SynthStats],
) -> None:
    path, stats = catalog
    _, rows = read_rows(path)
    keys = Counter((r["sku"], r["store_view_code"]) for r in rows)
    current = ""

    for row in rows:
        if not row["store_view_code"]:
            current = row["sku"]
            continue
        assert row["sku"] == current, "a store view row follows its product's global row"
        assert row["store_view_code"] in ("fr", "de")
        filled = {k for k, v in row.items() if v}
        assert STORE_VIEW_CELLS <= filled <= STORE_VIEW_CELLS | STORE_VIEW_OVERRIDES, row["sku"]
    assert max(keys.values()) == 1
    share = stats.store_view_rows / 2 / stats.products
    assert 0.2 <= share <= 0.4
    assert any("Sweat à capuche" in r["name"] for r in rows if r["store_view_code"] == "fr")


def test_generate_covers_export_value_shapes(catalog: tuple[Path, synth.SynthStats]) -> None:
    path, _ = catalog
    _, rows = read_rows(path)
    gl = global_rows(rows)

    assert all(r["categories"].startswith("Default Category") for r in gl)
    assert any("Default Category/Men/Bottoms/Shorts\\/Pants" in r["categories"] for r in gl)
    assert any(r["product_websites"] == "base,eu" for r in gl)
    assert Counter(r["product_websites"] for r in gl).most_common(1)[0][0] == "base"
    assert any(r["price"].endswith(".0000") for r in gl)
    assert any(r["price"] and "." not in r["price"] for r in gl)
    assert any(r["special_price"] and r["special_price_from_date"] for r in gl)
    assert any(r["is_in_stock"] == "0" and r["qty"] == "0" for r in gl)
    assert any("," in r["additional_images"] for r in gl)
    assert any(
        "material=" in r["additional_attributes"] and "|" in r["additional_attributes"] for r in gl
    )
    assert all("eco_collection=" in r["additional_attributes"] for r in gl)
    assert all(r["weight"] == "" for r in gl if r["product_type"] in ("virtual", "configurable"))
    categories = {p for r in gl for p in r["categories"].split(",")}
    assert 20 <= len(categories) <= synth.CATEGORY_COUNT + 1


def test_format_row_quotes_like_php_fputcsv() -> None:
    line = synth.format_row(["a", "", "b c", 'say "hi"', "x,y", "l1\nl2", "p|q=r", "a\\/b"])

    assert line == 'a,,"b c","say ""hi""","x,y","l1\nl2",p|q=r,"a\\/b"\n'


# -- edit -------------------------------------------------------------------------------------


def test_edit_changes_removes_and_adds_only_the_chosen_skus(
    catalog: tuple[Path, synth.SynthStats], tmp_path: Path
) -> None:
    src, stats = catalog
    dst = tmp_path / "edited.csv"

    result = synth.edit(src, dst, change_prices=10, remove=5, add=3, seed=1)

    before, after = raw_records(src), raw_records(dst)
    _, src_rows = read_rows(src)
    _, dst_rows = read_rows(dst)
    old = {r["sku"]: r for r in global_rows(src_rows)}
    new = {r["sku"]: r for r in global_rows(dst_rows)}
    assert len(result.changed) == 10 and len(result.removed) == 5 and len(result.added) == 3
    assert not set(result.changed) & set(result.removed)
    for sku in result.changed:
        assert new[sku]["price"] != old[sku]["price"]
        assert float(new[sku]["price"]) > float(old[sku]["price"])
        assert {k for k in old[sku] if old[sku][k] != new[sku][k]} <= {"price", "updated_at"}
    for sku in result.removed:
        assert sku not in new
        assert not any(key[0] == sku for key in after)
    for sku in result.added:
        assert sku not in old
        assert new[sku]["product_type"] == "simple" and new[sku]["price"]
    touched = {*result.changed, *result.removed, *result.added}
    untouched = {k: v for k, v in before.items() if k[0] not in touched}
    assert untouched == {k: v for k, v in after.items() if k[0] not in touched}
    assert list(untouched) == [k for k in after if k[0] not in touched]  # order kept
    assert result.products_before == stats.products
    assert len(new) == result.products_after == stats.products - 5 + 3


def test_edit_only_standalone_picks_standalone_simple_products(
    catalog: tuple[Path, synth.SynthStats], tmp_path: Path
) -> None:
    src, _ = catalog
    _, rows = read_rows(src)
    children = {
        e.split(",", 1)[0][4:]
        for r in global_rows(rows)
        for e in r["configurable_variations"].split("|")
        if e
    }
    types = {r["sku"]: r["product_type"] for r in global_rows(rows)}

    result = synth.edit(src, tmp_path / "e.csv", change_prices=40, remove=40, seed=9)

    for sku in (*result.changed, *result.removed):
        assert types[sku] in ("simple", "virtual") and sku not in children


def test_edit_same_seed_is_deterministic(
    catalog: tuple[Path, synth.SynthStats], tmp_path: Path
) -> None:
    src, _ = catalog

    first = synth.edit(src, tmp_path / "a.csv", change_prices=3, remove=2, add=2, seed=5)
    second = synth.edit(src, tmp_path / "b.csv", change_prices=3, remove=2, add=2, seed=5)

    assert first == second
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_edit_removing_a_child_drops_it_from_its_parent(tmp_path: Path) -> None:
    src, dst = tmp_path / "src.csv", tmp_path / "dst.csv"
    synth.generate(src, 60, seed=2, store_views=())

    result = synth.edit(src, dst, remove=30, seed=3, only_standalone=False)

    _, rows = read_rows(dst)
    present = {r["sku"] for r in rows}
    assert not set(result.removed) & present
    for row in rows:
        for entry in filter(None, row["configurable_variations"].split("|")):
            assert entry.split(",", 1)[0][4:] in present


def test_edit_fraction_changes_that_share_of_products(
    catalog: tuple[Path, synth.SynthStats], tmp_path: Path
) -> None:
    src, stats = catalog

    result = synth.edit_fraction(src, tmp_path / "f.csv", 0.01, seed=4)

    assert len(result.changed) == round(stats.products * 0.01)
    assert not result.removed and not result.added


def test_edit_asking_more_than_available_is_a_clear_error(
    catalog: tuple[Path, synth.SynthStats], tmp_path: Path
) -> None:
    src, stats = catalog

    with pytest.raises(ValueError, match=r"change_prices: \d+ requested"):
        synth.edit(src, tmp_path / "x.csv", change_prices=stats.products)


def test_edit_malformed_source_names_the_record(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text("sku,store_view_code,product_type,price\nA,,simple,1\nB,,simple\n")

    with pytest.raises(SourceError, match="record 2: 3 cells"):
        synth.edit(src, tmp_path / "out.csv", change_prices=1)

    src.write_text("name,price\nA,1\n")
    with pytest.raises(SourceError, match="no 'sku' column"):
        synth.edit(src, tmp_path / "out.csv")

    src.write_text('sku,product_type,price\nA,simple,"1\n')
    with pytest.raises(SourceError, match="unterminated"):
        synth.edit(src, tmp_path / "out.csv")


def test_edit_works_on_a_narrower_export_header(tmp_path: Path) -> None:
    src, dst = tmp_path / "src.csv", tmp_path / "dst.csv"
    src.write_text(
        "sku,store_view_code,product_type,name,price\r\n"
        'A,,simple,"Alpha one",52\r\nA,fr,simple,Alpha,\r\nB,,virtual,Beta,10.0000\r\n'
    )

    result = synth.edit(src, dst, change_prices=1, add=1, seed=0)

    text = dst.read_bytes().decode()
    assert text.startswith("sku,store_view_code,product_type,name,price\r\n")
    assert "A,fr,simple,Alpha,\r\n" in text  # untouched rows keep their bytes
    assert result.added[0] in text
    _, rows = read_rows(dst)
    assert len(rows) == 4


# -- CLI --------------------------------------------------------------------------------------


def test_cli_generate_and_edit(tmp_path: Path) -> None:
    runner = CliRunner()
    out, dst = tmp_path / "g.csv", tmp_path / "e.csv"

    gen = runner.invoke(synth.cli, ["generate", str(out), "--products", "200", "--seed", "1"])
    edited = runner.invoke(
        synth.cli,
        ["edit", str(out), str(dst), "--change-prices", "2", "--remove", "1", "--add", "3"],
    )
    too_many = runner.invoke(synth.cli, ["edit", str(out), str(dst), "--remove", "999"])

    assert gen.exit_code == 0, gen.output
    assert json.loads(gen.output)["products"] == 200
    assert edited.exit_code == 0, edited.output
    assert json.loads(edited.output)["products_after"] == 202
    assert too_many.exit_code == 1 and "remove: 999 requested" in too_many.output


# -- a fixed seed gives fixed bytes (across refactors) --------------------------------------------
# The digests were taken from the generator before it became a package; a change to them is
# a change of every synthetic catalog (and of the benchmarks' inputs): make it on purpose.


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fixed_seed_gives_the_same_catalog_and_edits_as_before(tmp_path: Path) -> None:
    src = tmp_path / "src.csv"

    stats = synth.generate(src, 1200, seed=5, websites=("base", "eu"))
    synth.edit(src, tmp_path / "e1.csv", change_prices=10, remove=5, add=3, seed=2)
    synth.edit(
        src, tmp_path / "e2.csv", change_prices=20, remove=20, add=2, seed=3, only_standalone=False
    )
    synth.edit_fraction(src, tmp_path / "e3.csv", 0.02, seed=4)

    assert _sha256(src) == "9657af5564b2837c00554c163a268096c2ffcc5184aca9438376c7b2cd360855"
    assert asdict(stats) == {
        "products": 1200,
        "rows": 1920,
        "configurables": 114,
        "children": 847,
        "simples": 221,
        "virtuals": 18,
        "store_view_rows": 720,
        "bytes": 1679868,
        "categories": 40,
    }
    assert _sha256(tmp_path / "e1.csv") == (
        "26b444843ae2963041ac66673cc64758c421c37005d61869f72d07e6a3fb170a"
    )
    assert _sha256(tmp_path / "e2.csv") == (
        "85bbf6d583a0913f6a723a246592bcd5b68b0ddd3990238e496b69a650e8ad1c"
    )
    assert _sha256(tmp_path / "e3.csv") == (
        "9d6726e84e1b1380389acf0b79e75f6303307bd73f54c0ff60bacc5e7256260c"
    )
