"""Pass 1 of the export CSV in byte ranges (worker processes) gives exactly what the
serial pass 1 gives, on tricky files: the same partition files byte for byte (so
frames, line numbers and their order), records, record fingerprints, rejections,
issues in order, and read report. A boundary that does not hold falls back to the
serial read."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from catalog_sync.records import Unchanged
from catalog_sync.sources.magento_csv import MagentoCsvSource, ranges
from catalog_sync.sources.magento_csv.stream import BLOCK_ENV, _Lines, newlines
from devstack import synth
from devstack.localaws import LocalAws


def _table(folder: Path) -> tuple[list[str], list[list[str]]]:
    base = folder / "base.csv"
    synth.generate(base, 150, seed=7, store_views=("fr", "de"))
    with open(base, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _csv(header: list[str], rows: list[list[str]], terminator: str = "\n") -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator=terminator).writerows([header, *rows])
    return out.getvalue().encode("utf-8")


def _html(header: list[str], rows: list[list[str]]) -> list[list[str]]:
    """Every other row's description: multi-line HTML with quotes, and a cell that
    is only a newline (a row end inside quotes at every turn)."""
    d, n = header.index("description"), header.index("name")
    out = [list(r) for r in rows]
    for i, row in enumerate(out):
        if i % 2 == 0:
            row[d] = f'<p class="intro">Row {i}\n<b>"5"" screen"</b>\n\n</p>\n'
        if i % 7 == 0:
            row[n] = '"' + row[n] + '"\n'
    return out


def _files(folder: Path) -> dict[str, bytes]:
    header, rows = _table(folder)
    html = _html(header, rows)
    plain = _csv(header, html)
    lines = plain.split(b"\n")
    third = len(plain) // 3
    cut = plain.rindex(b"\n", 0, len(plain) - 1)
    return {
        "html": plain,
        "crlf_bom": b"\xef\xbb\xbf" + _csv(header, html, "\r\n"),
        "blank_lines": b"\n".join(line + (b"\n" if i % 5 == 0 else b"") for i, line in enumerate(lines)),
        "bad_utf8": plain.replace(b"Row 40\n", b"Row \xff\xfe40\n").replace(b"Row 90", b"R\xc3"),
        "truncated_row": plain[: cut + 40],  # the last row cut short, no newline at the end
        # cut inside a quoted cell, just after one of its newlines
        "truncated_in_quotes": plain[: plain.index(b"\n", plain.rindex(b"Row ")) + 1],
        "unclosed_quote": plain[:third] + b'"never closed,' + plain[third:],
        "stray_quote": plain.replace(b"\nCF", b'\n5" CF', 3),  # quotes in unquoted cells
        "no_sku_rows": plain[:third] + b",,,\n\n ,x\n" + plain[third:],
    }  # fmt: skip


def _read(path: Path | str, work: Path, workers: int, **kw: Any) -> tuple[dict[str, Any], int]:
    """Everything a read gives, and the byte ranges its pass 1 used."""
    work.mkdir(exist_ok=True)
    skus = kw.pop("skus", None)
    source = MagentoCsvSource(
        str(path), workdir=work, partition_bytes=4096, workers=workers, parallel_bytes=0, **kw
    )
    prints: list[int] = []

    def skip(fp: int) -> float | None:
        prints.append(fp)
        return None if fp % 3 else 1.0  # a third of them "unchanged"

    records: list[str] = []
    with source.split(skus=skus) as split:
        files = [
            p.path.read_bytes() if p.path and p.path.exists() else b"" for p in split.partitions
        ]
        records.extend(repr(r) for r in split.rejected)
        for part in split.partitions:
            records.extend(repr(r) for r in part.records(split.warn, skip))
        context = split.fingerprint_context
    report = source.report()
    got = {
        "files": files,
        "records": records,
        "fingerprints": prints,
        "context": context,
        "report": repr(report),
    }
    return got, source.ranges


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ranges")
    out = {}
    for name, data in _files(folder).items():
        out[name] = folder / f"{name}.csv"
        out[name].write_bytes(data)
    return out


# the files whose quotes are balanced: every boundary holds, pass 1 runs in ranges
SPLITS = {"html", "crlf_bom", "blank_lines", "bad_utf8", "truncated_row", "no_sku_rows"}


@pytest.mark.parametrize(
    "name",
    ["html", "crlf_bom", "blank_lines", "bad_utf8", "truncated_row", "truncated_in_quotes",
     "unclosed_quote", "stray_quote", "no_sku_rows"],
)  # fmt: skip
def test_ranges_read_exactly_as_the_serial_read(
    files: dict[str, Path], tmp_path: Path, name: str
) -> None:
    serial, one = _read(files[name], tmp_path / "serial", 1)
    assert one == 1
    for workers in (2, 3):
        parallel, used = _read(files[name], tmp_path / f"w{workers}", workers)
        if name in SPLITS:
            assert used == workers
        for key in serial:
            assert parallel[key] == serial[key], (name, workers, key)


def test_the_tricky_files_are_tricky(files: dict[str, Path], tmp_path: Path) -> None:
    """The cases the equivalence test covers do occur in its files."""
    seen = {}
    for name in ("bad_utf8", "truncated_row", "truncated_in_quotes", "unclosed_quote"):
        got, _ = _read(files[name], tmp_path / name, 1)
        seen[name] = got["report"] + "".join(got["records"])
    assert "invalid UTF-8" in seen["bad_utf8"]
    assert "ends in the middle of a record" in seen["truncated_row"]
    assert "unclosed quote" in seen["truncated_in_quotes"]
    assert "complete=False" in seen["unclosed_quote"]
    assert files["html"].read_bytes().count(b"\n") > 2 * len(_table(tmp_path)[1])


def _bad_plan(path: Path) -> Callable[..., list[ranges.Range]]:
    """A plan whose second range starts inside a quoted multi-line cell (a newline
    with an odd number of quotes before it), as a miscounted pre-scan would."""
    data = path.read_bytes()
    at = data.index(b"\n<b>", len(data) // 2) + 1
    lines = data.count(b"\n", 0, at)

    def plan(origin: ranges.Origin, start: int, header_lines: int, size: int, n: int) -> Any:
        return [ranges.Range(start, header_lines), ranges.Range(at, lines)]

    return plan


def test_a_boundary_that_does_not_hold_falls_back_to_the_serial_read(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial, _ = _read(files["html"], tmp_path / "serial", 1)
    monkeypatch.setattr(ranges, "plan", _bad_plan(files["html"]))
    parallel, used = _read(files["html"], tmp_path / "bad", 2)
    assert used == 1  # the range before ended its row past the boundary
    assert parallel == serial
    assert not list((tmp_path / "bad").rglob("*.r*"))  # no range file left behind


def test_plan_puts_boundaries_at_row_ends(files: dict[str, Path]) -> None:
    path = files["html"]
    data = path.read_bytes()
    start = data.index(b"\n") + 1
    plan = ranges.plan(ranges.Origin(path=str(path)), start, 1, len(data), 5)
    assert len(plan) == 5
    for r in plan[1:]:
        assert data.count(b'"', start, r.start) % 2 == 0
        assert data[r.start - 1 : r.start] == b"\n"
        assert r.lines == data.count(b"\n", 0, r.start)


def test_small_or_unknown_size_files_stay_serial(files: dict[str, Path], tmp_path: Path) -> None:
    source = MagentoCsvSource(str(files["html"]), workdir=tmp_path, partition_bytes=4096, workers=2)
    with source.split():
        pass
    assert source.ranges == 1  # below PARALLEL_BYTES


@pytest.fixture
def s3(aws_clients: Callable[..., LocalAws]) -> Any:
    client = aws_clients().s3
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket="catalogs")
    return client


def test_s3_ranges_read_exactly_as_the_serial_read(
    s3: Any, files: dict[str, Path], tmp_path: Path
) -> None:
    serial, _ = _read(files["crlf_bom"], tmp_path / "serial", 1)
    s3.put_object(Bucket="catalogs", Key="ranges/c.csv", Body=files["crlf_bom"].read_bytes())
    parallel, used = _read("s3://catalogs/ranges/c.csv", tmp_path / "s3", 2, s3_client=s3)
    assert used == 2
    assert parallel == serial


def test_a_cell_with_a_nul_is_read_whole(files: dict[str, Path], tmp_path: Path) -> None:
    """Rows are framed as NUL-joined cells; a row whose cell holds a NUL is framed
    whole another way, and reads back the same."""
    data = files["html"].read_bytes().replace(b"Gwyn Cotton Tee-32-White", b"Gwyn\x00Tee", 1)
    path = tmp_path / "nul.csv"
    path.write_bytes(data)
    names = {
        r.sku: r.values.name
        for r in MagentoCsvSource(str(path), workdir=tmp_path).read()
        if hasattr(r, "values")
    }
    assert names["CF0000001-32-White"] == "Gwyn\x00Tee"


def test_file_and_memory_partitions_fingerprint_alike(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """A file partition fingerprints a record over its frames' offsets, an in-memory
    one over the frames: the same fingerprint for the same rows."""

    def prints(partition_bytes: int) -> dict[str, int]:
        source = MagentoCsvSource(
            str(files["bad_utf8"]), workdir=tmp_path, partition_bytes=partition_bytes
        )
        out: dict[str, int] = {}
        with source.split() as split:
            assert (split.partitions[0].path is None) == (partition_bytes > 1 << 20)
            for part in split.partitions:
                for r in part.records(split.warn, lambda fp: 1.0):
                    assert isinstance(r, Unchanged)  # every record known: none built
                    out.update(zip(r.skus, r.fingerprints, strict=True))
        return out

    memory, spilled = prints(1 << 30), prints(2048)
    assert len(memory) > 100
    assert spilled == memory


def test_ranges_with_stock_sources_and_wanted_skus(files: dict[str, Path], tmp_path: Path) -> None:
    """The Stock Sources rows follow the ranges' rows in every partition, as they
    follow the rows of a serial pass 1; a read by SKUs spills only those."""
    with open(files["html"], newline="", encoding="utf-8") as f:
        skus = [row[0] for row in list(csv.reader(f))[1:]]
    stock = tmp_path / "stock_sources.csv"
    lines = ["source_code,sku,status,quantity"]
    lines += [f"{code},{sku},1,{i % 9}" for i, sku in enumerate(skus) for code in ("eu", "us")]
    stock.write_text("\n".join(lines) + "\n", encoding="utf-8")
    wanted = [*skus[::3], "not-in-the-file"]
    for kw in ({"stock_sources": str(stock)}, {"skus": wanted}):
        serial, _ = _read(files["html"], tmp_path / "s", 1, **kw)
        parallel, used = _read(files["html"], tmp_path / "p", 2, **kw)
        assert used == 2
        assert parallel == serial
        if "stock_sources" in kw:
            plain, _ = _read(files["html"], tmp_path / "plain", 1)
            assert serial["records"] != plain["records"]  # the stock sources were read
        else:
            assert 0 < len(serial["records"]) < len(skus) // 2


# --- the lines, a block at a time (`stream._Lines.fast`) --------------------------------


def _parse(data: bytes, *, fast: bool, until: int | None = None) -> dict[str, Any]:
    """Rows with the line each ends on and the `pos` after it, as pass 1 sees them, and
    the account at the end; `until`: `pos` must be exact from that byte on."""
    lines = _Lines(io.BufferedReader(io.BytesIO(data), buffer_size=64), 3)  # type: ignore[arg-type]
    reader = csv.reader(lines.fast(until) if fast else lines)
    rows = []
    for row in reader:
        rows.append((row, reader.line_num, lines.pos))
    exact = [(r, n, pos) for r, n, pos in rows if until is None or pos >= until]
    account = (
        lines.line_no, lines.pos, lines.quotes, lines.bad_lines, lines.nul_lines,
        lines.ends_with_newline, lines.error, lines.at_eof(),
    )  # fmt: skip
    return {"rows": [(r, n) for r, n, _ in rows], "exact": exact, "account": account}


@pytest.mark.parametrize("block", [64, 300, 4096])
def test_lines_a_block_at_a_time_are_the_lines_one_at_a_time(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """Rows, line numbers and the account at the end alike; and from `until` on (where
    the next byte range starts), `pos` after each row exact, as a range needs it."""
    monkeypatch.setenv(BLOCK_ENV, str(block))
    nul = files["html"].read_bytes().replace(b"Row 12\n", b"Row \x0012\n")
    for data in [*(p.read_bytes() for p in files.values()), nul]:
        one = _parse(data, fast=False)
        assert _parse(data, fast=True) == {**one, "exact": _parse(data, fast=True)["exact"]}
        for until in (len(data) // 3, len(data) // 2, len(data) - 10):
            got = _parse(data, fast=True, until=until)
            assert got["rows"] == one["rows"] and got["account"] == one["account"]
            assert got["exact"] == [x for x in one["exact"] if x[2] >= until]


@pytest.mark.parametrize("name", ["html", "bad_utf8", "unclosed_quote", "truncated_row"])
def test_ranges_and_serial_read_alike_with_small_blocks(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Blocks of 200 bytes (the workers see the setting too): what the reads give is what
    they give a line at a time (the file is smaller than two blocks of the default)."""
    lines_at_a_time, _ = _read(files[name], tmp_path / "one", 1)
    monkeypatch.setenv(BLOCK_ENV, "200")
    for workers in (1, 2):
        got, _ = _read(files[name], tmp_path / f"small{workers}", workers)
        assert got == lines_at_a_time, (name, workers)


@pytest.mark.parametrize(
    "data",
    [b"", b"\n", b"no newline", b"a\nb\n", b"\n\n\n", b"a,b\r\nc,d\r\n", b"x" * 5000 + b"\n" * 7],
)
def test_newlines_counts_what_bytes_count_counts(data: bytes) -> None:
    assert newlines(data) == data.count(b"\n")


def test_a_range_worker_imports_no_sync_models() -> None:
    """A range worker imports `ranges` (its job's function) and the source: neither may
    pull in `catalog_sync.ports` and the pydantic models behind it, which took a
    worker 0.24 s to import before it read a byte (0.09 s without them)."""
    code = (
        "import sys; import catalog_sync.sources.magento_csv.ranges; "
        "from catalog_sync.sources.magento_csv.source import MagentoCsvSource; "
        "print(sorted(m for m in sys.modules if m == 'pydantic' or m == 'catalog_sync.ports'))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"
