"""HTTP for the gateway.

- ``json_http``: nameko's ``@http`` entrypoint answering JSON, errors
  included, with request ids and a body size limit;
- ``tokens``: the HS256 access tokens users issues and the gateway checks.

May import the base (``common.errors``, ``common.schemas``) only.
"""
