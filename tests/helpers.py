"""Small tools the tests share."""
import time

from nameko.events import event_handler
from nameko.testing.services import entrypoint_waiter

from common.events import EnvelopeSchema


def event_recorder(*events):
    """A service class that records the given ``(source, event_type)`` events,
    and the list it records them in as ``(event_type, envelope)``.

    Start it before the events are published: nameko drops an event that no
    queue is bound for yet.
    """
    received = []
    attributes = {"name": "event_recorder"}
    for source, event_type in events:
        def record(self, payload, event_type=event_type):
            EnvelopeSchema().load(payload)  # raises if the envelope is malformed
            received.append((event_type, payload))
        attributes[handler_name(event_type)] = event_handler(source, event_type)(record)
    return type("EventRecorder", (), attributes), received


def handler_name(event_type):
    return f"on_{event_type}"


def waiting_for_event(recorder_container, event_type, timeout=10):
    """Context manager: waits on exit until the recorder has handled one ``event_type``."""
    return entrypoint_waiter(recorder_container, handler_name(event_type), timeout=timeout)


def wait_for(condition, timeout=10):
    """Polls ``condition`` until it is true; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)
