"""Apply (or write) each service's database migrations.

    python -m tools.migrate                      # every database in config.yaml, to head
    python -m tools.migrate users                # one service
    python -m tools.migrate --revision users -m "add phone"   # autogenerate a new script
"""
import argparse
import sys

from alembic import command
from nameko.exceptions import ConfigurationError

from common.config import DEFAULT_CONFIG_PATH, database_uri, load_config
from common.data.migrations import alembic_config, upgrade


def migrate_all(config, services=None):
    for service_name in services or sorted(config["DB_URIS"]):
        upgrade(service_name, database_uri(config, service_name))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("services", nargs="*", help="services to migrate (default: all)")
    parser.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    parser.add_argument("--revision", action="store_true",
                        help="autogenerate a migration script for one service")
    parser.add_argument("-m", "--message", default="change")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    try:
        if args.revision:
            if len(args.services) != 1:
                parser.error("--revision takes exactly one service")
            service_name = args.services[0]
            command.revision(
                alembic_config(service_name, database_uri(config, service_name)),
                message=args.message, autogenerate=True)
        else:
            migrate_all(config, args.services)
    except ConfigurationError as exc:
        sys.exit(f"Error: {exc}")


if __name__ == "__main__":
    main()
