"""Publisher confirms on one channel per process, read by one green thread.

A confirmed publish through kombu's pool of producers holds a channel until
the broker's ack comes back: it writes the message, then reads the socket
for the ack itself, so every publish costs a wakeup and a read of its own,
and waits for its ack without another message in flight on its channel.
Here the green threads of a process that publish with confirms share one
channel in confirm mode: each writes its message under a lock and waits on
an event of its own, and one green thread reads the channel and wakes each
publisher as its ack arrives. Under load one read brings the acks of many
publishes (RabbitMQ acks several at once with ``multiple``).

What the blocking publish did is kept:

- a nack raises ``MessageNacked`` once the publish's retry policy has
  tried again as often as it allows. The channel is retired after a nack: on RabbitMQ 3.10 a channel that was sending
  to a quorum queue whose leader died went on having every later message
  to that queue nacked, long after a new leader took over (make
  cluster-test), so the next publishes go out on a new connection;
- a mandatory message that no queue takes raises ``UndeliverableMessage``:
  RabbitMQ returns it before it acks it, and the return is matched to its
  publish by the message id (the publish's own, or one given here);
- a lost connection fails every publish waiting for its ack, which each
  retries on a new connection as its retry policy allows (kombu's
  ``ensure`` did the same), through the next node of a failover URI;
- an error that closes the channel (an exchange that does not exist) fails
  every publish waiting on it, since the broker does not say whose message
  caused it.

The reader must be able to wait on the socket without holding up the
process, so the shared channel is used only where eventlet has made the
socket module cooperative, as it has in every nameko service.
"""
import itertools
import logging

import eventlet
from amqp.exceptions import MessageNacked, RecoverableChannelError, RecoverableConnectionError
from eventlet.event import Event
from eventlet.patcher import is_monkey_patched
from eventlet.semaphore import Semaphore
from kombu import Connection, Producer
from kombu.exceptions import OperationalError
from nameko.amqp.publish import UndeliverableMessage
from nameko.constants import DEFAULT_TRANSPORT_OPTIONS

# kombu's Connection.ensure's defaults, which the pooled publish retried with
DEFAULT_RETRY_POLICY = {
    "max_retries": None, "interval_start": 1, "interval_step": 1, "interval_max": 1}

# what a connection that failed, or could not be made, raises: worth
# another try on a new one (kombu's ensure retries py-amqp's same errors)
RECOVERABLE = (OperationalError, RecoverableConnectionError, RecoverableChannelError, OSError)

log = logging.getLogger(__name__)

_channels = {}
# ids for mandatory messages, to tell which publish a returned message was
_message_ids = itertools.count(1)


def confirmed_channel(amqp_uri, ssl=None, login_method=None):
    """The process's shared confirm channel to this broker, or None where
    the socket module blocks (outside eventlet)."""
    key = (amqp_uri, repr(ssl), login_method)
    channel = _channels.get(key)
    if channel is None:
        if not is_monkey_patched("socket"):
            return None
        channel = _channels[key] = ConfirmedChannel(amqp_uri, ssl, login_method)
    return channel


class ConfirmedChannel:
    """Publishes with confirms on one connection at a time, connecting
    again after it is lost."""

    def __init__(self, amqp_uri, ssl=None, login_method=None):
        self.amqp_uri = amqp_uri
        self.ssl = ssl
        self.login_method = login_method
        self.link = None
        self.connecting = Semaphore()

    def publish(self, payload, *, declare=(), retry=True, retry_policy=None, **options):
        """Publish and wait for the broker's ack; ``options`` are kombu's
        ``Producer.publish``'s."""
        policy = {**DEFAULT_RETRY_POLICY, **(retry_policy or {})}
        retries = 0
        while True:
            try:
                return self._link().publish(payload, declare, options)
            except (*RECOVERABLE, MessageNacked):
                if not retry or (
                        policy["max_retries"] is not None and retries >= policy["max_retries"]):
                    raise
            eventlet.sleep(min(policy["interval_start"] + retries * policy["interval_step"],
                               policy["interval_max"]))
            retries += 1

    def _link(self):
        if self.link is None or not self.link.usable:
            with self.connecting:  # one green thread connects; the others wait for it
                if self.link is None or not self.link.usable:
                    self.link = _Link(Connection(
                        self.amqp_uri, ssl=self.ssl, login_method=self.login_method,
                        transport_options=DEFAULT_TRANSPORT_OPTIONS))
        return self.link


class _Pending:
    __slots__ = ("done", "message_id", "returned")

    def __init__(self, message_id):
        self.done = Event()
        self.message_id = message_id
        self.returned = False


class _Link:
    """One connection's confirm channel, its reader and the publishes
    waiting for their acks. Once ``error`` is set the link is done with;
    once ``retired``, it takes no new publishes and closes after the last
    ack it waits for."""

    def __init__(self, connection):
        self.connection = connection
        # each node of a failover URI once, as kombu's ensure_connection goes round them
        connection.ensure_connection(max_retries=max(len(connection.alt), 1) - 1)
        self.channel = connection.channel()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self._acked)
        self.channel.events["basic_nack"].add(self._nacked)
        self.channel.events["basic_return"].add(self._returned)
        self.producer = Producer(self.channel, auto_declare=False)
        self.writing = Semaphore()
        self.next_tag = 1  # the broker numbers a channel's publishes from 1
        self.waiting = {}  # delivery tag: _Pending, in the order published
        self.returnable = {}  # message id: _Pending, for mandatory publishes
        self.declared = set()
        self.error = None
        self.retired = False
        self.reader = eventlet.spawn(self._read)

    @property
    def usable(self):
        return self.error is None and not self.retired

    def publish(self, payload, declare, options):
        with self.writing:
            if self.error is not None:
                raise self.error
            tag = self.next_tag
            message_id = (options.setdefault("message_id", f"p{next(_message_ids)}")
                          if options.get("mandatory") else None)
            pending = _Pending(message_id)
            if message_id is not None:
                self.returnable[message_id] = pending
            self.waiting[tag] = pending
            try:
                for entity in declare:
                    if entity not in self.declared:
                        # no wait for declare-ok: only the reader reads the socket
                        entity.declare(nowait=True, channel=self.channel)
                        self.declared.add(entity)
                self.producer.publish(payload, **options)
            except BaseException as exc:
                # how much of the message went out is unknown, so the channel
                # cannot be trusted with another: the others waiting on it
                # publish again on a new one, this one raises its own error
                del self.waiting[tag]
                self._fail(RecoverableConnectionError(f"a publish on the channel failed: {exc!r}"))
                self.reader.kill()
                raise
            self.next_tag += 1
        error = pending.done.wait()
        if error is not None:
            raise error

    def _read(self):
        try:
            while True:
                self.connection.drain_events()
        except Exception as exc:
            if self.error is None:
                log.warning("the confirm channel's connection was lost (%s: %s); "
                            "the next publish connects again", type(exc).__name__, exc)
            self._fail(exc)

    def _fail(self, exc):
        if self.error is not None:
            return
        self.error = exc
        waiting, self.waiting, self.returnable = self.waiting, {}, {}
        for pending in waiting.values():
            pending.done.send(exc)
        self.connection.collect()

    def _settle(self, delivery_tag, multiple, error):
        if multiple:
            settled = []
            for tag in self.waiting:
                if tag > delivery_tag:
                    break
                settled.append(tag)
        else:
            settled = [delivery_tag]
        for tag in settled:
            pending = self.waiting.pop(tag, None)
            if pending is None:  # a publish that failed, and its channel with it
                continue
            if pending.message_id is not None:
                self.returnable.pop(pending.message_id, None)
            pending.done.send(UndeliverableMessage() if pending.returned and error is None
                              else error)
        if self.retired and not self.waiting:
            self._fail(RecoverableConnectionError("the channel was retired"))

    def _acked(self, delivery_tag, multiple):
        self._settle(delivery_tag, multiple, None)

    def _nacked(self, delivery_tag, multiple):
        if not self.retired:
            log.warning("the broker refused a message; later publishes go out on a new channel")
        self.retired = True
        self._settle(delivery_tag, multiple, MessageNacked())

    def _returned(self, exc, exchange, routing_key, message):
        # RabbitMQ returns an unroutable mandatory message before it acks it
        pending = self.returnable.get(message.properties.get("message_id"))
        if pending is not None:
            pending.returned = True
