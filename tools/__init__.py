"""Commands for running and operating the shop; services never import them.

What a user or an operator runs lives here: ``launch`` (``make run``),
``preflight`` (what ``make run`` and ``make test`` need), ``migrate``,
``demo_data``, ``dlq`` (dead letters), ``queues`` (``make migrate-queues``),
``healthcheck`` (the container probes) and ``amqp`` (their broker
connections). The load, crash, cluster, fuzz and benchmark harnesses are in
``tools.harness``, which may import these commands but not the reverse.
"""
import warnings

# nameko 2.14 imports eventlet, which warns on every start that it is deprecated
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
