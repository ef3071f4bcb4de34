"""The service container the shop runs every service in (``SERVICE_CONTAINER_CLS``).

It checks the whole config before nameko builds anything, so a bad setting
stops ``nameko run`` with one "Error: ..." line instead of a traceback from
deep inside an extension.
"""
from nameko.containers import ServiceContainer

from common.config import check_settings


class ShopServiceContainer(ServiceContainer):
    def __init__(self, service_cls, config):
        check_settings(config)
        super().__init__(service_cls, config)
