"""The development stack: moto wiring, the local runner, the feed receiver, the fake
Magento server, synthetic catalogs, the demo. Installed with the optional extra
`[local]` (`pip install 'catalog-sync[local]'`); without it, importing any part of it
raises `LocalExtraMissing`, which `catalogctl` shows as a one-line error."""

from __future__ import annotations

import importlib.util

from catalog_sync.errors import CatalogSyncError

# The modules of the extra that the development stack imports.
EXTRA_MODULES = ("moto", "werkzeug")
EXTRA_HINT = "the local stack needs: pip install 'catalog-sync[local]'"


class LocalExtraMissing(CatalogSyncError, ImportError):
    """The optional extra `[local]` is not installed."""


def _check_extra() -> None:
    missing = [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise LocalExtraMissing(f"{EXTRA_HINT} (missing: {', '.join(missing)})")


_check_extra()
