"""The service container the shop runs every service in (``SERVICE_CONTAINER_CLS``).

It checks the whole config before nameko builds anything, so a bad setting
stops ``nameko run`` with one "Error: ..." line instead of a traceback from
deep inside an extension.

Its first log line names the service's version and revision
(common.build). Stopping, it first lets an extension that can drain do so
(common.web.json_http.JsonWebServer: not ready for SHUTDOWN.DRAIN_SECONDS
while still serving), then stops as nameko does.

It also stops once however often it is asked: ``nameko run`` starts a new
``stop()`` for every SIGTERM, and a second one running beside the first
stops the extensions twice and hangs both. Two SIGTERMs are common: an
operator's impatience, or the kernel's parent-death signal, which
``make run``'s launcher asks for and which arrives once per thread of a
dying launcher.
"""
import logging

from nameko.containers import ServiceContainer

from common.build import build_info
from common.config import check_settings

log = logging.getLogger(__name__)


class ShopServiceContainer(ServiceContainer):
    def __init__(self, service_cls, config):
        check_settings(config)
        super().__init__(service_cls, config)
        self._stopping = False
        build = build_info()
        log.info("%s %s (revision %s)", self.service_name, build["version"], build["revision"])

    def stop(self):
        if self._stopping:
            self._died.wait()
            return
        self._stopping = True
        for extension in self.subextensions:
            if hasattr(extension, "drain"):  # common.web.json_http.JsonWebServer
                extension.drain()
        super().stop()
