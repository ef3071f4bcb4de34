"""The gateway's catalogue cache: products and catalogue pages answered from
memory, kept coherent by the products service's events.

Products are small and read far more than they change. Each gateway keeps
the products and pages it served lately (:class:`Catalogue`, plain Python)
and listens to ``product_created``, ``product_changed`` (and
``product_updated``) and ``product_deleted`` on a queue of its own (a broadcast handler: every
instance hears every event). An event drops the product it names and every
cached page; the next read asks the products service again. So a change is
seen by every gateway as soon as its event arrives. A TTL bounds how stale an
entry can be if an event is lost, and the cache holds at most ``MAX_ENTRIES``
(least recently used first out).

The cache serves only while its event queue is consumed: at start, and
whenever the broker connection drops, it is empty and every read goes to the
products service until the queue is consuming again.

A read that misses fetches from the products service and stores the answer
only if no event arrived meanwhile (an *epoch* counts the events): an answer
read before a change but returned after its event must not be kept.
"""
import logging
import time
from collections import OrderedDict

from marshmallow import EXCLUDE, Schema
from nameko.events import BROADCAST, EventHandler
from nameko.extensions import DependencyProvider
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from common.messaging.consumers import ShopQueueConsumer
from common.messaging.events import load_event
from common.messaging.retry import InvalidEvent
from common.observability.telemetry import telemetry_of
from common.schemas import id_field

log = logging.getLogger(__name__)

# product_updated: what products on 0.2.0 publish for a change (goes in 0.4.0)
PRODUCT_EVENTS = ("product_created", "product_changed", "product_updated", "product_deleted")


class Catalogue:
    """Products by id and pages by their query, each for at most
    ``ttl_seconds``, at most ``max_entries`` in all. Serves nothing until
    :meth:`go_live`."""

    def __init__(self, max_entries, ttl_seconds, clock=time.monotonic):
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self.entries = OrderedDict()  # key: (expires_at, epoch, value)
        self.epoch = 0
        self.live = False
        self.hits = self.misses = self.invalidations = 0

    def product(self, product_id, fetch):
        """The product, from memory or ``fetch(product_id)``."""
        return self._read(("product", product_id), lambda: fetch(product_id))

    def page(self, fetch, **query):
        """A page of the catalogue, from memory or ``fetch(**query)``
        (``limit``, ``offset``, ``after``)."""
        return self._read(("page", *sorted(query.items())), lambda: fetch(**query))

    def categories(self, fetch):
        """The catalogue's categories, from memory or ``fetch()``: a listing
        like a page, which any change may move."""
        return self._read(("page", "categories"), fetch)

    def forget(self, product_id=None):
        """A product was created, changed or deleted: forget it and every
        page (``None``: an unknown change, forget everything)."""
        self.epoch += 1  # pages of an older epoch are never served
        if product_id is None:
            self.entries.clear()
        else:
            self.entries.pop(("product", product_id), None)
        self.invalidations += 1

    def go_live(self):
        """Events are arriving: from now on, what is stored is kept coherent."""
        self.forget()
        self.live = True

    def go_cold(self):
        """Events may be missed: serve nothing from memory, store nothing."""
        self.live = False
        self.forget()

    def __len__(self):
        return len(self.entries)

    def _read(self, key, fetch):
        entry = self.entries.get(key)
        if entry is not None:
            expires_at, epoch, value = entry
            if self.live and epoch == self.epoch_of(key) and self.clock() < expires_at:
                self.entries.move_to_end(key)
                self.hits += 1
                return value
            del self.entries[key]
        self.misses += 1
        epoch = self.epoch
        value = fetch()  # yields to other greenthreads: events may arrive
        if self.live and epoch == self.epoch:
            self.entries[key] = (self.clock() + self.ttl_seconds, self.epoch_of(key), value)
            if len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)
        return value

    def epoch_of(self, key):
        """The epoch an entry must carry to be served: pages belong to the
        current one, since any change may move them; a product stays valid
        until an event names it (and drops it)."""
        return self.epoch if key[0] == "page" else 0


class CatalogueCache(DependencyProvider):
    """``self.catalogue``: the container's :class:`Catalogue`, or, with
    ``CATALOGUE_CACHE.ENABLED`` false, one that never stores anything."""

    def setup(self):
        settings = self.container.config.get("CATALOGUE_CACHE") or {}
        self.enabled = settings.get("ENABLED", True)
        self.catalogue = Catalogue(settings.get("MAX_ENTRIES", 10_000),
                                   settings.get("TTL_SECONDS", 30))

    def start(self):
        telemetry = telemetry_of(self.container)
        if telemetry is not None:
            telemetry.metrics.registry.register(CatalogueMetrics(self.catalogue))

    def events_consumed(self):
        if self.enabled:
            self.catalogue.go_live()

    def events_interrupted(self):
        self.catalogue.go_cold()

    def get_dependency(self, worker_ctx):
        return self.catalogue


class CatalogueMetrics:
    """The cache's counts, read when Prometheus scrapes."""

    def __init__(self, catalogue):
        self.catalogue = catalogue

    def collect(self):
        catalogue = self.catalogue
        yield CounterMetricFamily(
            "shop_catalogue_cache_hits", "Catalogue reads answered from memory",
            value=catalogue.hits)
        yield CounterMetricFamily(
            "shop_catalogue_cache_misses", "Catalogue reads sent to the products service",
            value=catalogue.misses)
        yield CounterMetricFamily(
            "shop_catalogue_cache_invalidations",
            "Times the cache forgot entries: a product event, or the event queue (re)starting",
            value=catalogue.invalidations)
        yield GaugeMetricFamily(
            "shop_catalogue_cache_entries", "Products and pages in the cache",
            value=len(catalogue))


def catalogue_cache_of(container):
    [cache] = [d for d in container.dependencies if isinstance(d, CatalogueCache)]
    return cache


class CatalogueEventsConsumer(ShopQueueConsumer):
    """A connection of its own for the cache's event queues, so that the
    cache knows exactly when its events flow: it goes live when the queues
    are consumed and cold whenever the connection is lost or comes back
    (the queues, exclusive, died with the old connection and missed what
    was published meanwhile)."""

    consuming_connection = None

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        super().on_consume_ready(connection, channel, consumers, **kwargs)
        self.consuming_connection = connection
        catalogue_cache_of(self.container).events_consumed()

    def on_connection_revived(self):
        super().on_connection_revived()
        catalogue_cache_of(self.container).events_interrupted()

    def on_connection_error(self, exc, interval):
        catalogue_cache_of(self.container).events_interrupted()
        super().on_connection_error(exc, interval)


class CatalogueEventHandler(EventHandler):
    queue_consumer = CatalogueEventsConsumer()

    def setup(self):
        super().setup()
        # nameko declares it durable; exclusive, it dies with its connection
        # anyway, and transient, a dead cluster node takes it along too
        self.queue.durable = False


class ProductEventData(Schema):
    class Meta:
        unknown = EXCLUDE

    id = id_field(required=True)


def catalogue_events(method):
    """Runs ``method(self, envelope)`` for each product event, from queues of
    this instance's own that die with it."""
    for event_type in PRODUCT_EVENTS:
        method = CatalogueEventHandler.decorator(
            "products", event_type, handler_type=BROADCAST, reliable_delivery=False)(method)
    return method


def product_id_of(envelope):
    """The product an event is about, or None (everything) if the event is
    malformed."""
    try:
        return load_event(envelope, ProductEventData())["id"]
    except InvalidEvent as exc:
        log.error("a product event the cache cannot read; emptying the cache: %s", exc)
        return None
