"""Move the shop's classic queues, messages and bindings included, to quorum
queues (``make migrate-queues``), after an upgrade from a version that
declared them classic. Stop every service first: a queue with consumers is
left alone.

    python -m tools.queues list       # the shop's durable queues and their types
    python -m tools.queues migrate    # move the classic ones over

For each classic queue it moves the messages into a quorum queue
``<name>.migrating``, deletes the classic queue, declares it again as the
shop does (a quorum queue, with the same bindings), and moves the messages
back. If it is interrupted, running it again finishes the job: it first
empties any ``.migrating`` queue it finds into its target. It reads the
queue list through RabbitMQ's management API (the ``rabbitmq_management``
plugin), at the broker's host on port 15672 unless ``--management-url`` says.
"""
import argparse
import re
import sys
import urllib.parse

import requests
from kombu import Queue

from common.config import DEFAULT_CONFIG_PATH, load_config
from common.messaging.queues import QUORUM
from common.messaging.retry import DEAD_LETTER_QUEUE, handler_queue, retry_queue
from tools.amqp import connect, node_uris

MIGRATING_SUFFIX = ".migrating"
SHOP_QUEUE_NAME = re.compile(r"^(rpc-[\w-]+|evt-.+|shop\.retry\.\d+ms|shop\.dead-letters)$")


def is_shop_queue(queue):
    """One of the queues the shop declares durable (the management API's
    view of it); reply queues and the gateways' event queues are exclusive,
    and end with their process."""
    return (bool(SHOP_QUEUE_NAME.match(queue["name"])) and queue.get("durable", False)
            and not queue.get("exclusive") and not queue.get("auto_delete"))


def shop_arguments(name):
    """The arguments the shop declares the queue ``name`` with."""
    if name == DEAD_LETTER_QUEUE.name:
        return DEAD_LETTER_QUEUE.queue_arguments
    delay = re.fullmatch(r"shop\.retry\.(\d+)ms", name)
    if delay:
        return retry_queue(int(delay.group(1))).queue_arguments
    if name.startswith("evt-"):
        return handler_queue(Queue(name)).queue_arguments
    return dict(QUORUM)


class Broker:
    def __init__(self, amqp_uri, management_url=None):
        parts = urllib.parse.urlsplit(node_uris(amqp_uri)[0])
        self.vhost = urllib.parse.unquote(parts.path[1:]) or "/"
        self.api = (management_url or f"http://{parts.hostname}:15672").rstrip("/") + "/api"
        self.auth = (urllib.parse.unquote(parts.username or "guest"),
                     urllib.parse.unquote(parts.password or "guest"))
        self.connection = connect(amqp_uri)
        self.channel = self.connection.channel()

    def close(self):
        self.connection.close()

    def get(self, path):
        vhost = urllib.parse.quote(self.vhost, safe="")
        response = requests.get(f"{self.api}/{path.format(vhost=vhost)}", auth=self.auth,
                                timeout=10)
        response.raise_for_status()
        return response.json()

    def queues(self):
        return {queue["name"]: queue for queue in self.get("queues/{vhost}")}

    def bindings(self, name):
        quoted = urllib.parse.quote(name, safe="")
        return [binding for binding in self.get(f"queues/{{vhost}}/{quoted}/bindings")
                if binding["source"]]  # "": the default exchange's implicit binding

    def declare(self, name, arguments):
        self.channel.queue_declare(name, durable=True, arguments=arguments)

    def move(self, source, target):
        """Every message of ``source`` into ``target``, in order, each acked
        only once the broker confirmed its copy; returns how many."""
        # a channel of its own: RabbitMQ 3.10 fails a channel (INTERNAL_ERROR)
        # that publishes to a queue it knew under the same name with another type
        channel = self.connection.channel()
        channel.confirm_delivery()
        moved = 0
        while True:
            method, properties, body = channel.basic_get(source)
            if method is None:
                channel.close()
                return moved
            channel.basic_publish("", target, body, properties, mandatory=True)
            channel.basic_ack(method.delivery_tag)
            moved += 1


def migrate(broker, say=print):
    queues = broker.queues()
    for temporary in sorted(name for name in queues if name.endswith(MIGRATING_SUFFIX)):
        target = temporary.removesuffix(MIGRATING_SUFFIX)
        if queues.get(target, {}).get("type", "quorum") != "quorum":
            continue  # interrupted before the classic queue was deleted: done below
        broker.declare(target, shop_arguments(target))
        say(f"{target}: {broker.move(temporary, target)} message(s) back from {temporary}")
        broker.channel.queue_delete(temporary)
    migrated = 0
    for name, queue in sorted(broker.queues().items()):
        if not is_shop_queue(queue) or queue.get("type") == "quorum":
            continue
        if queue.get("consumers"):
            sys.exit(f"Error: {name} has {queue['consumers']} consumer(s): stop the shop first")
        bindings = broker.bindings(name)
        temporary = name + MIGRATING_SUFFIX
        broker.declare(temporary, dict(QUORUM))
        held = broker.move(name, temporary)
        broker.channel.queue_delete(name)
        broker.declare(name, shop_arguments(name))
        for binding in bindings:
            broker.channel.queue_bind(name, binding["source"], binding["routing_key"],
                                      binding["arguments"] or None)
        broker.move(temporary, name)
        broker.channel.queue_delete(temporary)
        say(f"{name}: now a quorum queue ({held} message(s), {len(bindings)} binding(s) kept)")
        migrated += 1
    say(f"{migrated} queue(s) moved to quorum queues")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    parser.add_argument("--management-url", help="e.g. http://127.0.0.1:15672")
    parser.add_argument("command", choices=("list", "migrate"))
    args = parser.parse_args(argv)
    broker = Broker(load_config(args.config)["AMQP_URI"], args.management_url)
    try:
        if args.command == "list":
            for name, queue in sorted(broker.queues().items()):
                if is_shop_queue(queue):
                    print(f"{queue.get('type', '?'):<8} {queue.get('messages', 0):>7}  {name}")
        else:
            migrate(broker)
    finally:
        broker.close()


if __name__ == "__main__":
    main()
