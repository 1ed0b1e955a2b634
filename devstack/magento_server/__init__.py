"""A local Magento 2 REST API (a test double) serving a catalog read from an export CSV.

- `catalog`: the catalog in memory and its REST JSON shapes;
- `criteria`: searchCriteria (filters, sorting, paging) as Magento applies them;
- `server`: `MagentoApiServer`, the HTTP server, routes and fault injection.
"""

from devstack.magento_server.criteria import parse_query
from devstack.magento_server.inventory import Inventory, Stock
from devstack.magento_server.server import MagentoApiServer

__all__ = ["Inventory", "MagentoApiServer", "Stock", "parse_query"]
