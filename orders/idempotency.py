"""Idempotency keys: a request retried with the same key is answered as the
first one was, and changes nothing more (the IETF httpapi draft's
``Idempotency-Key``, as payment APIs use it).

A key belongs to the user who sent it. Its row, with the answer, is written
in the transaction that makes the request's change, so a crash cannot keep
one without the other, and the key's primary key lets only one request with
it commit. A request whose key was used before therefore fails: its commit
fails on the key, or it finds its change already made (the order paid, say)
or no longer possible. Only then does the service look the key up, and
replay the answer it kept, or refuse the same key sent with another request
(another body, another order) with 422. A first request, the usual case,
costs no lookup and no round trip of its own. A request that fails changes
nothing and keeps no key, so a retry carries it out afresh.

Keys expire after ``IDEMPOTENCY.KEY_TTL_SECONDS``, and are pruned in batches.
"""
import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from nameko.extensions import DependencyProvider
from sqlalchemy import bindparam, delete, func, insert, select, tuple_

from common.config import IdempotencySettings
from common.data.db import deferred
from common.errors import IdempotencyKeyReused, RequestInProgress
from orders.models import IdempotencyKey

PRUNE_BATCH_SIZE = 1000

# built once: every keyed request writes its key; one that fails looks it up
_THIS_KEY = (IdempotencyKey.user_id == bindparam("user_id"),
             IdempotencyKey.key == bindparam("key"))
FIND_KEY = select(IdempotencyKey.fingerprint, IdempotencyKey.answer,
                  IdempotencyKey.expires_at).where(*_THIS_KEY)
# sent with the COMMIT on PostgreSQL: the key's primary key is what a
# request whose key was used before fails on
KEEP_KEY = deferred(insert(IdempotencyKey.__table__))
FORGET_EXPIRED_KEY = delete(IdempotencyKey.__table__).where(
    *_THIS_KEY, IdempotencyKey.expires_at <= bindparam("now"))


@dataclass(frozen=True)
class KeyedRequest:
    user_id: int
    key: str
    fingerprint: str


def fingerprint(operation, arguments):
    """What a request asks for, so that a key reused for another is told apart."""
    canonical = json.dumps({"operation": operation, "arguments": arguments},
                           sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def earlier_answer(session, request, now):
    """The answer the key's request got, or None for a key not seen (or
    expired). IdempotencyKeyReused for a key sent with another request."""
    known = session.execute(
        FIND_KEY, {"user_id": request.user_id, "key": request.key}).one_or_none()
    if known is None or known.expires_at <= now:
        return None
    if known.fingerprint != request.fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request; "
            "use a new key for a new request")
    return known.answer


def keep_answer(session, request, answer, ttl, now):
    """Write the key and its answer in the change's transaction, before its commit."""
    session.execute(KEEP_KEY, {
        "user_id": request.user_id, "key": request.key, "fingerprint": request.fingerprint,
        "answer": answer, "created_at": now, "expires_at": now + ttl})


def forget_expired(session, request, now):
    """Delete the key if its use has expired (not pruned yet), so that the
    request can be carried out afresh; whether it was. Commits."""
    forgotten = session.execute(FORGET_EXPIRED_KEY, {
        "user_id": request.user_id, "key": request.key, "now": now}).rowcount
    session.commit()
    return forgotten == 1


def prune(session, now):
    """Delete one batch of expired keys; how many were deleted."""
    expired = (select(IdempotencyKey.user_id, IdempotencyKey.key)
               .where(IdempotencyKey.expires_at <= now)
               .order_by(IdempotencyKey.expires_at).limit(PRUNE_BATCH_SIZE))
    pruned = session.execute(delete(IdempotencyKey).where(
        tuple_(IdempotencyKey.user_id, IdempotencyKey.key).in_(expired))).rowcount
    session.commit()
    return pruned


def kept(session):
    """How many keys are kept, expired ones waiting to be pruned included."""
    return session.scalar(select(func.count()).select_from(IdempotencyKey))


class IdempotencyKeys(DependencyProvider):
    """``self.idempotency_keys``: how long keys are kept
    (``IDEMPOTENCY.KEY_TTL_SECONDS``), and the keyed requests this process
    is carrying out."""

    def setup(self):
        settings = IdempotencySettings().load(self.container.config.get("IDEMPOTENCY") or {})
        self.ttl = timedelta(seconds=settings["KEY_TTL_SECONDS"])
        self.carried_out = set()

    @contextmanager
    def in_progress(self, request):
        """Marks ``request`` as being carried out here. A retry that reaches
        this process meanwhile is refused with 409 and Retry-After rather
        than carried out beside it; one that reaches another instance fails
        its commit on the key there, and replays this one's answer."""
        mark = (request.user_id, request.key)
        if mark in self.carried_out:
            raise RequestInProgress(
                "A request with this Idempotency-Key is still being processed; retry shortly")
        self.carried_out.add(mark)
        try:
            yield
        finally:
            self.carried_out.discard(mark)

    def get_dependency(self, worker_ctx):
        return self
