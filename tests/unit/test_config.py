import copy

import pytest
from nameko.exceptions import ConfigurationError

from common.config import DEVELOPMENT_JWT_SECRET, check_settings


def test_the_shipped_config_is_valid(base_config):
    check_settings(base_config)


@pytest.mark.parametrize("change, named", [
    (lambda c: c.pop("AMQP_URI"), "AMQP_URI: missing"),
    (lambda c: c.update(AMQP_URI="http://localhost"), "AMQP_URI: must be amqp://"),
    (lambda c: c.update(AMQP_URI="amqp://a:5672/;http://b"), "AMQP_URI: must be amqp://"),
    (lambda c: c.update(HEARTBEAT=0), "HEARTBEAT: Must be greater than or equal to 1"),
    (lambda c: c.update(max_workers="ten"), "max_workers: Not a valid integer."),
    (lambda c: c.update(WEB_SERVER_ADDRESS="localhost:http"), "WEB_SERVER_ADDRESS: must be [host:]port"),
    (lambda c: c["DB_URIS"].update(users="not a uri"), "DB_URIS.users: 'not a uri' is not a database URI"),
    (lambda c: c["DB_URIS"].update(users="mysql://db/users"), "DB_URIS.users: 'mysql' is not supported"),
    (lambda c: c["JWT"].update(SECRET="short"), "JWT.SECRET: Shorter than minimum length 32."),
    (lambda c: c["JWT"].pop("LIFETIME_SECONDS"), "JWT.LIFETIME_SECONDS: missing"),
    (lambda c: c["ADMIN"].update(USERNAME="root", PASSWORD=""), "ADMIN: set both"),
    (lambda c: c["ADMIN"].update(USERNAME="root", PASSWORD="short"), "ADMIN.PASSWORD: must be at least 8"),
    (lambda c: c["OUTBOX"].update(RETENTION_SECONDS=-1), "OUTBOX.RETENTION_SECONDS: Must be greater"),
])
def test_a_bad_setting_fails_with_one_line_naming_it(base_config, change, named):
    config = copy.deepcopy(base_config)
    change(config)
    with pytest.raises(ConfigurationError) as error:
        check_settings(config)
    message = str(error.value)
    assert named in message
    assert "\n" not in message


def test_the_development_secret_is_the_one_config_yaml_ships(base_config):
    assert base_config["JWT"]["SECRET"] == DEVELOPMENT_JWT_SECRET


def test_production_refuses_the_development_secret_and_the_guest_broker_account(base_config):
    config = copy.deepcopy(base_config)
    config["ENVIRONMENT"] = "production"
    with pytest.raises(ConfigurationError) as error:
        check_settings(config)
    assert str(error.value) == (
        "Invalid settings in config.yaml: "
        "JWT.SECRET: is the development default; set JWT_SECRET (SHOP_ENV=production); "
        "AMQP_URI: uses the default guest account; set AMQP_URI (SHOP_ENV=production)")

    config["JWT"]["SECRET"] = "a-production-secret-of-at-least-32-characters"
    config["AMQP_URI"] = "amqp://shop:s3cret@rabbitmq:5672/"
    check_settings(config)


def test_a_cluster_is_several_nodes_separated_by_semicolons(base_config):
    config = copy.deepcopy(base_config)
    config["AMQP_URI"] = "amqp://shop:pw@rabbit-1:5672/; amqp://shop:pw@rabbit-2:5672/"
    check_settings(config)
    config.update(ENVIRONMENT="production", AMQP_URI=(
        "amqp://shop:pw@rabbit-1:5672/;amqp://guest:guest@rabbit-2:5672/"))
    config["JWT"]["SECRET"] = "a-production-secret-of-at-least-32-characters"
    with pytest.raises(ConfigurationError, match="AMQP_URI: uses the default guest account"):
        check_settings(config)
