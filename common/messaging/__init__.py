"""RabbitMQ, without the ways nameko 2.14 loses messages or hangs.

- ``consumers``: the queue consumer every entrypoint and proxy shares;
- ``queues``: every durable queue a quorum queue;
- ``publisher`` and ``confirms``: publishing through a pooled producer, with
  publisher confirms on one channel per process;
- ``rpc``: calls with a timeout and a circuit breaker per service;
- ``entrypoints``: the shop's ``rpc``, timer and health check entrypoints;
- ``events``: the envelope and the checked event handler;
- ``outbox``: events written in the change's transaction, relayed after;
- ``retry``: delayed retries and dead letters for event handlers.

May import the base, ``common.data`` and ``common.observability``.
"""
