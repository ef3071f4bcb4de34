"""Log lines that say which service, entrypoint, call and request they belong to.

config.yaml's ``LOGGING`` section (applied by ``nameko run``) puts
:class:`WorkerContextFilter` on the console handler and picks a formatter by
``LOG_FORMAT``: ``text`` (one readable line, coloured on a terminal) or
``json`` (one object per line, for a log collector). Every line written while
a worker runs carries the worker's service, entrypoint, nameko call id and
request id; :class:`common.observability.telemetry.Telemetry` marks the worker as current.
"""
import json
import logging
import os
import sys
from datetime import datetime, timezone

from eventlet.corolocal import local

CONTEXT_FIELDS = ("service", "entrypoint", "call_id", "request_id")
# a record's own attributes, not extra fields to print
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", *CONTEXT_FIELDS}

_current = local()  # one per green thread: the worker it runs
# the services this process runs: one under nameko run, several in tests
_process_services = set()


def register_service(name):
    _process_services.add(name)


def bind_worker(worker_ctx):
    _current.worker_ctx = worker_ctx


def unbind_worker():
    _current.worker_ctx = None


def worker_context_fields():
    """The context fields of the worker this green thread runs, if any."""
    worker_ctx = getattr(_current, "worker_ctx", None)
    if worker_ctx is None:
        # outside a worker (a relay, a server thread): the process's service, if only one
        only = next(iter(_process_services)) if len(_process_services) == 1 else None
        return {"service": only}
    return {
        "service": worker_ctx.service_name,
        "entrypoint": worker_ctx.entrypoint.method_name,
        "call_id": worker_ctx.call_id,
        "request_id": worker_ctx.data.get("request_id"),
    }


class WorkerContextFilter(logging.Filter):
    """Sets the context fields on each record; a field the caller passed in
    ``extra=`` wins."""

    def filter(self, record):
        for name, value in worker_context_fields().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


def _extra_fields(record):
    return {key: value for key, value in vars(record).items()
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the context
    fields, any ``extra=`` fields, and the traceback if there is one."""

    def format(self, record):
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            line[name] = getattr(record, name, None)
        line.update(_extra_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


LEVEL_COLOURS = {"DEBUG": "\033[2m", "INFO": "\033[32m", "WARNING": "\033[33m",
                 "ERROR": "\033[31m", "CRITICAL": "\033[1;31m"}
DIM, RESET = "\033[2m", "\033[0m"


class TextFormatter(logging.Formatter):
    """``12:00:01.123 INFO  orders.place_order [req 5f2c…] message``, coloured
    when ``colour`` is ``always``, or ``auto`` and stderr is a terminal
    (``LOG_COLOR``). ``extra=`` fields are for the JSON lines only."""

    def __init__(self, colour="auto"):
        super().__init__()
        colour = os.environ.get("LOG_COLOR", colour)
        self.colour = colour == "always" or (colour == "auto" and sys.stderr.isatty())

    def format(self, record):
        time = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        where = record.name
        if getattr(record, "entrypoint", None):
            where = f"{record.service}.{record.entrypoint}"
        request = f" [req {record.request_id}]" if getattr(record, "request_id", None) else ""
        level = f"{record.levelname:<7}"
        if self.colour:
            level = f"{LEVEL_COLOURS.get(record.levelname, '')}{level}{RESET}"
            request = f"{DIM}{request}{RESET}"
        text = f"{time} {level} {where}{request} {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text
