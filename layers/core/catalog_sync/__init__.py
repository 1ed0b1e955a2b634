"""catalog-sync: keeps a Magento catalog in sync with SaaS feed APIs."""

__version__ = "0.1.0"
