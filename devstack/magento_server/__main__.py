"""`python -m devstack.magento_server CSV --port 8788 --token T`."""

from devstack.magento_server.server import main

main()
