#!/bin/sh
# Run by Patroni once, on the node that initialised the cluster, with a
# connection URI to it: creates the shop's databases, which the other nodes
# then replicate. (The failover test runs it with SHOP_DATABASES_SQL set.)
set -eu
psql -v ON_ERROR_STOP=1 -d "$1" -f "${SHOP_DATABASES_SQL:-/etc/patroni/shop-databases.sql}"
