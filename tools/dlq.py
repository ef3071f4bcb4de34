"""List and replay dead letters: events a handler could not handle
(``make dlq``, ``make dlq-replay``).

    python -m tools.dlq list                 # every dead letter, oldest first
    python -m tools.dlq replay --all         # send every one back to its handler
    python -m tools.dlq replay ID [ID ...]   # only these

Replaying sends the message, unchanged and with its attempts reset, to the
queue of the handler that failed on it. Fix the cause first: a message that
fails again comes back here after its retries.
"""
import argparse
import sys
from dataclasses import dataclass

import pika
from pika.exceptions import AMQPConnectionError

from common.config import DEFAULT_CONFIG_PATH, load_config
from common.messaging.retry import (
    ATTEMPTS_HEADER, DEAD_LETTER_QUEUE, FAILED_AT_HEADER, QUEUE_HEADER, REASON_HEADER,
    REDELIVERY_LIMIT)
from tools.amqp import connect

DEAD_LETTER_HEADERS = (ATTEMPTS_HEADER, QUEUE_HEADER, REASON_HEADER, FAILED_AT_HEADER,
                       "x-death", "x-delivery-count")


@dataclass
class DeadLetter:
    id: str
    queue: str
    reason: str
    failed_at: str
    attempts: int
    body: bytes

    def line(self):
        return (f"{self.id}  {self.failed_at}  {self.queue}  "
                f"after {self.attempts} attempt(s): {self.reason.splitlines()[-1]}")


def broker_reason(death):
    if death.get("reason") == "delivery_limit":
        return (f"delivered {REDELIVERY_LIMIT} times without being settled "
                "(did its consumer crash on it? see the service's log)")
    return str(death.get("reason", ""))


class DeadLetterQueue:
    """The ``shop.dead-letters`` queue, read with pika outside nameko."""

    def __init__(self, amqp_uri):
        self.connection = connect(amqp_uri)
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()
        self.channel.queue_declare(
            DEAD_LETTER_QUEUE.name, durable=True, arguments=DEAD_LETTER_QUEUE.queue_arguments)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        # closing the channel returns every message taken but not acked
        self.connection.close()

    def take_all(self):
        """Every dead letter, held (unacked) until replayed or the queue is closed."""
        taken = []
        while True:
            method, properties, body = self.channel.basic_get(DEAD_LETTER_QUEUE.name)
            if method is None:
                return taken
            headers = properties.headers or {}
            # RabbitMQ's own dead letters (a handler queue's delivery limit)
            # say where they came from in x-death only
            [death, *_] = headers.get("x-death") or [{}]
            taken.append((method.delivery_tag, properties, DeadLetter(
                id=properties.message_id or str(method.delivery_tag),
                queue=headers.get(QUEUE_HEADER) or str(death.get("queue", "?")),
                reason=str(headers.get(REASON_HEADER) or broker_reason(death)),
                failed_at=str(headers.get(FAILED_AT_HEADER) or death.get("time", "")),
                attempts=int(headers.get(ATTEMPTS_HEADER, 0)),
                body=body)))

    def list(self):
        return [letter for _, _, letter in self.take_all()]

    def replay(self, ids=None):
        """Send the dead letters (all, or those in ``ids``) back to their
        queues; returns the ones replayed."""
        replayed = []
        for delivery_tag, properties, letter in self.take_all():
            if ids is not None and letter.id not in ids:
                continue
            headers = {key: value for key, value in (properties.headers or {}).items()
                       if key not in DEAD_LETTER_HEADERS}
            self.channel.basic_publish(
                exchange="", routing_key=letter.queue, body=letter.body, mandatory=True,
                properties=pika.BasicProperties(
                    headers=headers, content_type=properties.content_type,
                    content_encoding=properties.content_encoding, delivery_mode=2))
            self.channel.basic_ack(delivery_tag)
            replayed.append(letter)
        return replayed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG_PATH)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list every dead letter")
    replay = commands.add_parser("replay", help="send dead letters back to their handlers")
    replay.add_argument("ids", nargs="*", help="ids from `list`")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    args = parser.parse_args(argv)
    if args.command == "replay" and bool(args.ids) == args.all:
        parser.error("give the ids to replay, or --all")

    amqp_uri = load_config(args.config)["AMQP_URI"]
    try:
        with DeadLetterQueue(amqp_uri) as queue:
            if args.command == "list":
                letters = queue.list()
                for letter in letters:
                    print(letter.line())
                print(f"{len(letters)} dead letter(s)")
            else:
                replayed = queue.replay(None if args.all else set(args.ids))
                for letter in replayed:
                    print(f"replayed {letter.id} to {letter.queue}")
                missing = set(args.ids) - {letter.id for letter in replayed}
                if missing:
                    sys.exit(f"Error: no dead letter with id {', '.join(sorted(missing))}")
    except AMQPConnectionError as exc:
        sys.exit(f"Error: RabbitMQ is not reachable ({exc!r}). Is it running?")


if __name__ == "__main__":
    main()
