"""Connections to RabbitMQ for the tools that use pika, outside nameko."""
import pika


def node_uris(amqp_uri):
    """The nodes of an AMQP_URI, which may list several (kombu's failover
    syntax, ``amqp://a:5672/;amqp://b:5672/``); kombu's ``pyamqp://`` is
    plain ``amqp://`` to pika."""
    return [uri.strip().removeprefix("py") for uri in amqp_uri.split(";") if uri.strip()]


def connect(amqp_uri):
    """A blocking connection to the first node of ``amqp_uri`` that answers."""
    return pika.BlockingConnection([pika.URLParameters(uri) for uri in node_uris(amqp_uri)])
