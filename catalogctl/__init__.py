"""catalogctl: command-line tools for catalog-sync (operators, demo, benchmarks)."""
