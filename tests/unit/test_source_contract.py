"""The source contract: what each source offers is declared by the Protocols of
`catalog_sync.ports` and answered by isinstance, never probed for."""

from __future__ import annotations

from catalog_sync.ports import CatalogSource, IncrementalSource, PartitionedSource, ProductIdSource
from catalog_sync.sources.magento_csv import MagentoCsvSource
from catalog_sync.sources.magento_rest import MagentoRestSource


def test_source_contract_csv_is_partitioned_only() -> None:
    csv_source = MagentoCsvSource("catalog.csv")
    assert isinstance(csv_source, CatalogSource)
    assert isinstance(csv_source, PartitionedSource)
    assert not isinstance(csv_source, IncrementalSource)
    assert not isinstance(csv_source, ProductIdSource)


def test_source_contract_rest_is_incremental_and_knows_product_ids() -> None:
    rest = MagentoRestSource("https://shop.example.com", lambda: "token")
    assert isinstance(rest, CatalogSource)
    assert isinstance(rest, IncrementalSource)
    assert isinstance(rest, ProductIdSource)
    assert not isinstance(rest, PartitionedSource)
    assert rest.incremental is False  # no watermark given: a full read
