"""The gateway: the shop's HTTP API, which calls the domain services over RPC."""
