"""The ACO target's feeds: Adobe Commerce Optimizer's Data Ingestion API entities.

One module per entity; every item is exactly the JSON body item sent to ACO (no
`deleted`/`modifiedAt`), so its hash is the hash of what is sent, and a tombstone
is the entity's delete keys. See docs/aco.md for the mapping.
"""

from __future__ import annotations

METADATA = "acoProductMetadata"
CATEGORIES = "acoCategories"
PRODUCTS = "acoProducts"
PRICE_BOOKS = "acoPriceBooks"
PRICES = "acoPrices"

# In the order ACO recommends (and the reindex queues them): metadata, categories,
# products, price books, prices.
ACO_FEED_NAMES = (METADATA, CATEGORIES, PRODUCTS, PRICE_BOOKS, PRICES)
