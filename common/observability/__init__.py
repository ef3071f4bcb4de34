"""What a running service tells its operators.

- ``logs``: text or JSON log lines carrying service, entrypoint, call and
  request ids;
- ``metrics``: a Prometheus registry per service container, served on its
  own port;
- ``tracing``: OpenTelemetry spans carried in nameko's context data;
- ``telemetry``: the ``Telemetry`` dependency that does all three for every
  worker.

May import the base (``common.errors``) only.
"""
