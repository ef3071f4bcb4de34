"""Every durable queue of the shop is a quorum queue.

A classic queue lives on one RabbitMQ node: when that node dies, its
messages are out of reach until it comes back, or gone if its disk is. A
quorum queue is replicated to the cluster's nodes (Raft) and keeps working
while a majority of them is up. On a single node it behaves as a durable
queue. The queues an instance uses alone (RPC reply queues, the gateway's
broadcast queues) stay classic, exclusive and transient: they end with their
consumer anyway.

RabbitMQ refuses to declare a queue again with another type, so a shop
whose broker still has classic queues from an older version would fail at
start with a channel error. :func:`check_declared` turns that into one line
that names the queue and the command that moves it
(``make migrate-queues``, tools/queues.py).
"""
from amqp.exceptions import PreconditionFailed
from kombu.exceptions import OperationalError
from nameko.exceptions import ConfigurationError

QUEUE_TYPE = "x-queue-type"
QUORUM = {QUEUE_TYPE: "quorum"}
# a quorum queue dead-letters at least once (rather than at most once,
# RabbitMQ's default) only with this overflow mode
AT_LEAST_ONCE_DEAD_LETTERING = {
    "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
MIGRATE_COMMAND = "make migrate-queues"


def quorum(queue, **arguments):
    """Make the kombu ``queue`` a quorum queue, with ``arguments`` added."""
    queue.queue_arguments = {**(queue.queue_arguments or {}), **QUORUM, **arguments}
    return queue


def is_quorum(queue):
    return (queue.queue_arguments or {}).get(QUEUE_TYPE) == "quorum"


class WrongQueueType(ConfigurationError):
    pass


def check_declared(connection, queues):
    """Declare ``queues`` over the kombu ``connection`` (closed at the end); a
    queue that exists with other arguments (a classic queue from before, say)
    raises :class:`WrongQueueType`. An unreachable broker is left to the
    caller, which connects (and declares them) once it is back."""
    with connection:
        for queue in queues:
            try:
                # a refused declaration closes its channel: one for each
                with connection.channel() as channel:
                    queue(channel).declare()
            except (OperationalError, *connection.connection_errors):
                return
            except PreconditionFailed as exc:
                raise WrongQueueType(
                    f"the queue {queue.name!r} exists on the broker with other arguments "
                    f"than this version declares ({exc.reply_text}); stop the shop and "
                    f"run `{MIGRATE_COMMAND}` to move it and its messages over") from None
