"""Magento's product export CSV as a catalog source, in two passes.

- `stream`: the file's bytes (local or S3) as lines, knowing a cut-off record;
- `source`: pass 1 streams the rows and partitions them by SKU (`MagentoCsvSource`);
- `ranges`: pass 1 of a large file in byte ranges, one worker process each;
- `partitions`: the spilled partitions that pass 2 (or a worker process) reads;
- `builder`: the rows of one SKU become a `CatalogProduct` or a `Rejected`;
- `columns`, `cells`: what each column means and how one cell is parsed.
"""

from catalog_sync.sources.magento_csv.partitions import CsvPartition, CsvSplit
from catalog_sync.sources.magento_csv.source import MagentoCsvSource
from catalog_sync.sources.values import parse_date

__all__ = ["CsvPartition", "CsvSplit", "MagentoCsvSource", "parse_date"]
