"""Idempotency keys: a request retried with the same key is answered as the
first one was, and changes nothing more (the IETF httpapi draft's
``Idempotency-Key``, as payment APIs use it).

A key belongs to the user who sent it. Before its request is carried out,
the key is claimed in a row of its own, with a lease: a retry that arrives
meanwhile is refused with 409 and ``Retry-After`` (RequestInProgress), never
carried out beside it. The answer is written with the change itself, in
the same transaction, so a crash cannot keep one without the other: a retry
then finds the answer and replays it, or finds no change and, once the lease
has run out, carries the request out. A request that fails without changing
anything gives its key up, so that a retry runs it again. The same key with
another request (another body, another order) is refused with 422.

Keys expire after ``IDEMPOTENCY.KEY_TTL_SECONDS``, and are pruned in batches.
"""
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta

from nameko.extensions import DependencyProvider
from sqlalchemy import delete, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from common.config import IdempotencySettings
from common.errors import IdempotencyKeyReused, RequestInProgress
from orders.models import IdempotencyKey

# longer than any request is carried out for: the gateway gives up on one
# after RPC.TIMEOUT_SECONDS (5 s by default)
LEASE_SECONDS = 10
PRUNE_BATCH_SIZE = 1000
# a claim lost to a concurrent prune or give-up is tried again this often
CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class Claim:
    """A key this request holds until ``lease``: it may carry the request out."""

    user_id: int
    key: str
    lease: object


@dataclass(frozen=True)
class Replay:
    """The key's request was carried out before: this is what it answered."""

    answer: dict


def fingerprint(operation, arguments):
    """What a request asks for, so that a key reused for another is told apart."""
    canonical = json.dumps({"operation": operation, "arguments": arguments},
                           sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim(session, user_id, key, request_fingerprint, ttl, now):
    """Claim ``key`` for a request, committed at once: a :class:`Claim` to
    carry it out, or a :class:`Replay` of the answer it got before. Raises
    IdempotencyKeyReused for another request's key and RequestInProgress
    while the first request with it still holds its lease."""
    lease = now + timedelta(seconds=LEASE_SECONDS)
    this = (IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    for _ in range(CLAIM_ATTEMPTS):
        try:
            session.execute(insert(IdempotencyKey).values(
                user_id=user_id, key=key, fingerprint=request_fingerprint, locked_until=lease,
                created_at=now, expires_at=now + ttl))
            session.commit()
            return Claim(user_id, key, lease)
        except IntegrityError:  # the key is known
            session.rollback()
        known = session.get(IdempotencyKey, (user_id, key), populate_existing=True)
        if known is None:  # pruned or given up meanwhile
            continue
        if known.expires_at <= now:  # expired, not pruned yet: a new request
            taken = update(IdempotencyKey).where(
                *this, IdempotencyKey.expires_at == known.expires_at).values(
                fingerprint=request_fingerprint, answer=None, locked_until=lease,
                created_at=now, expires_at=now + ttl)
        elif known.fingerprint != request_fingerprint:
            session.rollback()
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used for a different request; "
                "use a new key for a new request")
        elif known.locked_until is None:
            answer = known.answer
            session.rollback()
            return Replay(answer)
        elif known.locked_until > now:
            session.rollback()
            raise RequestInProgress(
                "A request with this Idempotency-Key is still being processed; "
                "retry shortly")
        else:  # its first request died before it changed anything
            taken = update(IdempotencyKey).where(
                *this, IdempotencyKey.locked_until == known.locked_until).values(
                locked_until=lease)
        if session.execute(taken).rowcount == 1:
            session.commit()
            return Claim(user_id, key, lease)
        session.rollback()  # another request took it first
    raise RequestInProgress(
        "A request with this Idempotency-Key is still being processed; retry shortly")


def keep_answer(session, held, answer):
    """Store the request's answer with the change it made: call it in the
    change's transaction, before its commit. A claim whose lease ran out
    and was taken by a retry is no longer this request's: RequestInProgress,
    and the change must be rolled back."""
    kept = session.execute(update(IdempotencyKey).where(
        IdempotencyKey.user_id == held.user_id, IdempotencyKey.key == held.key,
        IdempotencyKey.locked_until == held.lease).values(answer=answer, locked_until=None))
    if kept.rowcount != 1:
        raise RequestInProgress(
            "A retry of this request took its Idempotency-Key over; retry shortly")


def give_up(session, held):
    """The request changed nothing (it failed): free its key, so that a
    retry carries it out. Commits."""
    session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.user_id == held.user_id, IdempotencyKey.key == held.key,
        IdempotencyKey.locked_until == held.lease))
    session.commit()


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
    """``self.idempotency_keys.ttl``: how long keys are kept
    (``IDEMPOTENCY.KEY_TTL_SECONDS``), read once per service."""

    def setup(self):
        settings = IdempotencySettings().load(self.container.config.get("IDEMPOTENCY") or {})
        self.ttl = timedelta(seconds=settings["KEY_TTL_SECONDS"])

    def get_dependency(self, worker_ctx):
        return self
