"""Deterministic synthetic Magento catalogs (product export CSV) and edits of them.

`generate()` writes a file shaped like Magento's standard product export (System > Data
Transfer > Export, entity Products): the full export header in export order, one row per
product and store view, PHP `fputcsv` quoting, LF line ends, HTML descriptions with raw
newlines, `additional_attributes`, `configurable_variations` (children listed before their
parent, as in the Luma sample), sparse store-view override rows.

`edit()` / `edit_fraction()` stream an export to a new file, changing prices, removing
products and adding new simple products; every row they do not touch is copied byte for byte.

Same seed and size give a byte-identical file: one `random.Random(seed)`, no clock, no set
iteration. Both functions stream row by row, so memory stays flat for large catalogs.

Modules: `export_format` (the header, `fputcsv` rows), `vocabulary` (names, categories,
dates, prices), `writer` (`generate`), `edits` (`iter_records`, `edit`, `edit_fraction`),
`cli`.

CLI::

    python -m devstack.synth generate OUT --products N [--seed S]
    python -m devstack.synth edit SRC DST --change-prices 10 --remove 5 --add 3
    python -m devstack.synth edit-fraction SRC DST --fraction 0.01
"""

from devstack.synth.cli import cli
from devstack.synth.edits import EditResult, edit, edit_fraction, iter_records
from devstack.synth.export_format import EXPORT_COLUMNS, format_row
from devstack.synth.vocabulary import CATEGORY_COUNT
from devstack.synth.writer import SynthStats, generate

__all__ = [
    "CATEGORY_COUNT",
    "EXPORT_COLUMNS",
    "EditResult",
    "SynthStats",
    "cli",
    "edit",
    "edit_fraction",
    "format_row",
    "generate",
    "iter_records",
]
