"""Adapters: the ports of `catalog_sync.domain.ports` over real technology."""
