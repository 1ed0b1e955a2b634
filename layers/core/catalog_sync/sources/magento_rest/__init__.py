"""The Magento 2 REST API as a catalog source.

- `client`: authenticated GETs through the project's retry policy (`catalog_sync.http`),
  search criteria, pages fetched `concurrency` at a time and yielded in order;
- `mapper`: REST JSON to `CatalogProduct` (option ids to labels, categories, stock,
  store-view overrides), the same records the export CSV gives;
- `parts`: the smaller JSON parts (numbers, the category tree, stock items, gallery,
  links, the store-view difference);
- `inventory`: MSI sources, stocks, links and source items (multi-source shops);
- `source`: `MagentoRestSource`, the read: metadata, parents, stock, then the products.
"""

from catalog_sync.sources.magento_rest.client import search_criteria
from catalog_sync.sources.magento_rest.source import MagentoRestSource

__all__ = ["MagentoRestSource", "search_criteria"]
