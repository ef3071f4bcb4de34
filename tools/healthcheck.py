"""Is a domain service ready? ``python -m tools.healthcheck orders`` exits 0
when the service answers its ``ping`` RPC, database included, within 3 s,
and 1 with one line saying why otherwise. Container health checks and
Kubernetes probes run it; the gateway has GET /health and /health/ready."""
import argparse
import sys

from nameko.standalone.rpc import ClusterRpcProxy

from common.config import DEFAULT_CONFIG_PATH, load_config
from tools.launch import DOMAIN_SERVICES

TIMEOUT_SECONDS = 3


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=DOMAIN_SERVICES)
    parser.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    args = parser.parse_args(argv)
    try:
        with ClusterRpcProxy(load_config(args.config), timeout=TIMEOUT_SECONDS) as rpc:
            getattr(rpc, args.service).ping()
    except Exception as exc:  # any failure means "not ready", said in one line
        sys.exit(f"{args.service} is not ready: {type(exc).__name__}: {exc}")
    print(f"{args.service} is ready")


if __name__ == "__main__":
    main()
