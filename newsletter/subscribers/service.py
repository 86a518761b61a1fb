"""The subscriber lifecycle: signup, confirm, preferences, unsubscribe, export, erase.

Every function takes a session and plain values and never commits: the edge
(web handler, task, CLI command) owns the transaction. Emails are queued with
`enqueue`, which publishes only after that transaction commits.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.content.models import Topic
from newsletter.content.service import resolve_topics
from newsletter.db import dialect_insert, rowcount, utcnow
from newsletter.errors import DomainError
from newsletter.queue import enqueue
from newsletter.subscribers.models import (
    Consent,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionReason,
)
from newsletter.subscribers.tokens import InvalidTokenError, TokenSigner

SEND_CONFIRMATION = "newsletter.send_confirmation_email"
SEND_WELCOME = "newsletter.send_welcome_email"
SEND_ALREADY_SUBSCRIBED = "newsletter.send_already_subscribed_email"

# Suppression reasons that only the address's owner can lift, by confirming a
# fresh signup. Bounces and complaints are not lifted by a web form.
_LIFTED_BY_RECONFIRMING = (SuppressionReason.UNSUBSCRIBED, SuppressionReason.ERASED)


class SubscriberError(DomainError):
    """A request the subscriber domain refuses."""


class SubscriberNotFoundError(SubscriberError):
    pass


class SignupOutcome(StrEnum):
    CREATED = "created"
    RESENT = "resent"
    RATE_LIMITED = "rate_limited"
    ALREADY_ACTIVE = "already_active"
    SUPPRESSED = "suppressed"


class ConfirmOutcome(StrEnum):
    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already_confirmed"


class UnsubscribeOutcome(StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    ALREADY_UNSUBSCRIBED = "already_unsubscribed"


@dataclass(frozen=True)
class ConsentInfo:
    """Where a signup came from, for the consent record."""

    source: str
    text_version: str
    ip_address: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class SignupResult:
    outcome: SignupOutcome
    subscriber: Subscriber


def email_hash(email: str) -> str:
    """The key of an address on the suppression list: sha256 of its case-folded form."""
    return hashlib.sha256(email.casefold().encode("utf-8")).hexdigest()


def get_subscriber_by_email(session: Session, email: str) -> Subscriber | None:
    return session.scalar(select(Subscriber).where(Subscriber.email_hash == email_hash(email)))


def get_subscriber(session: Session, subscriber_id: int) -> Subscriber | None:
    return session.get(Subscriber, subscriber_id)


def suppression_reason(session: Session, email: str) -> SuppressionReason | None:
    reason = session.scalar(
        select(Suppression.reason).where(Suppression.email_hash == email_hash(email))
    )
    return None if reason is None else SuppressionReason(reason)


def suppress(session: Session, hashed_email: str, reason: SuppressionReason) -> None:
    """Put an address hash on the suppression list; a concurrent duplicate is a no-op."""
    session.execute(
        dialect_insert(session, Suppression)
        .values(email_hash=hashed_email, reason=reason, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["email_hash"])
    )


def _may_send_signup_email(subscriber: Subscriber, now: datetime, min_interval: int) -> bool:
    last = subscriber.signup_email_sent_at
    return last is None or now - last >= timedelta(seconds=min_interval)


def _get_or_create_subscriber(
    session: Session, *, email: str, hashed: str, now: datetime
) -> tuple[Subscriber, bool]:
    """The locked row for an address, or a new pending one; (subscriber, created)."""
    query = select(Subscriber).where(Subscriber.email_hash == hashed).with_for_update()
    existing = session.scalar(query)
    if existing is not None:
        return existing, False
    subscriber = Subscriber(
        email=email,
        email_hash=hashed,
        name="",
        timezone="UTC",
        status=SubscriberStatus.PENDING,
        confirmation_nonce=secrets.token_hex(8),
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(subscriber)
    except IntegrityError:
        # Two signups of one new address at once (a double-clicked button): the
        # other transaction inserted first, so carry on with its row.
        existing = session.scalar(query)
        if existing is None:
            raise
        return existing, False
    return subscriber, True


def signup(
    session: Session,
    *,
    email: str,
    name: str,
    topic_slugs: Sequence[str],
    timezone: str,
    consent: ConsentInfo,
    resend_after_seconds: int,
    now: datetime | None = None,
) -> SignupResult:
    """Start (or restart) a double opt-in for a validated, normalised address.

    A pending address gets its confirmation again (at most once per interval), an
    active one gets an "already subscribed" note instead, and an unsubscribed or
    erased one starts a fresh opt-in: the caller answers all of them the same way,
    so the response never tells a stranger whether an address is on the list.
    """
    now = now or utcnow()
    topics = resolve_topics(session, topic_slugs)
    hashed = email_hash(email)
    suppressed = session.scalar(select(Suppression.reason).where(Suppression.email_hash == hashed))
    if suppressed is not None and suppressed not in _LIFTED_BY_RECONFIRMING:
        return SignupResult(SignupOutcome.SUPPRESSED, Subscriber(email=email))

    subscriber, created = _get_or_create_subscriber(session, email=email, hashed=hashed, now=now)
    if created:
        outcome = SignupOutcome.CREATED
    elif subscriber.status == SubscriberStatus.ACTIVE:
        if _may_send_signup_email(subscriber, now, resend_after_seconds):
            subscriber.signup_email_sent_at = now
            enqueue(session, SEND_ALREADY_SUBSCRIBED, subscriber.id)
        return SignupResult(SignupOutcome.ALREADY_ACTIVE, subscriber)
    elif subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        subscriber.status = SubscriberStatus.PENDING
        subscriber.confirmation_nonce = secrets.token_hex(8)
        subscriber.signup_email_sent_at = None
        outcome = SignupOutcome.CREATED
    else:
        outcome = SignupOutcome.RESENT

    subscriber.email = email
    subscriber.name = name
    subscriber.timezone = timezone
    subscriber.topics = topics
    session.add(
        Consent(
            subscriber=subscriber,
            accepted_at=now,
            source=consent.source,
            ip_address=consent.ip_address,
            user_agent=(consent.user_agent or "")[:500] or None,
            text_version=consent.text_version,
        )
    )
    if not _may_send_signup_email(subscriber, now, resend_after_seconds):
        session.flush()
        return SignupResult(SignupOutcome.RATE_LIMITED, subscriber)
    subscriber.signup_email_sent_at = now
    session.flush()
    enqueue(session, SEND_CONFIRMATION, subscriber.id)
    return SignupResult(outcome, subscriber)


def resend_confirmation(
    session: Session, subscriber_id: int, *, resend_after_seconds: int, now: datetime | None = None
) -> bool:
    """Send a pending subscriber a new confirm link; False when not pending or too soon."""
    now = now or utcnow()
    subscriber = session.get(Subscriber, subscriber_id, with_for_update=True)
    if subscriber is None or subscriber.status != SubscriberStatus.PENDING:
        return False
    if not _may_send_signup_email(subscriber, now, resend_after_seconds):
        return False
    subscriber.signup_email_sent_at = now
    enqueue(session, SEND_CONFIRMATION, subscriber.id)
    return True


def confirm(
    session: Session, token: str, signer: TokenSigner, *, now: datetime | None = None
) -> tuple[ConfirmOutcome, Subscriber]:
    """Activate the subscriber a confirm token names. Idempotent for the same token.

    Raises InvalidTokenError (or ExpiredTokenError) for a link that is altered, expired, or
    from an earlier signup round.
    """
    now = now or utcnow()
    claim = signer.read_confirm_token(token)
    activated = rowcount(
        session,
        update(Subscriber)
        .where(
            Subscriber.id == claim.subscriber_id,
            Subscriber.status == SubscriberStatus.PENDING,
            Subscriber.confirmation_nonce == claim.nonce,
        )
        .values(status=SubscriberStatus.ACTIVE, confirmed_at=now, unsubscribed_at=None),
    )
    subscriber = session.get(Subscriber, claim.subscriber_id, populate_existing=True)
    if subscriber is None or subscriber.confirmation_nonce != claim.nonce:
        raise InvalidTokenError("this confirmation link is from an earlier signup")
    if activated:
        session.execute(
            delete(Suppression).where(
                Suppression.email_hash == subscriber.email_hash,
                Suppression.reason.in_(_LIFTED_BY_RECONFIRMING),
            )
        )
        latest_consent = subscriber.consents[-1] if subscriber.consents else None
        if latest_consent is not None:
            latest_consent.confirmed_at = now
        enqueue(session, SEND_WELCOME, subscriber.id)
        return ConfirmOutcome.CONFIRMED, subscriber
    if subscriber.status == SubscriberStatus.ACTIVE:
        return ConfirmOutcome.ALREADY_CONFIRMED, subscriber
    raise InvalidTokenError("you unsubscribed after this link was sent; sign up again to rejoin")


def unsubscribe(
    session: Session, subscriber_id: int, *, now: datetime | None = None
) -> UnsubscribeOutcome:
    """Stop all newsletter mail to a subscriber and suppress the address. Idempotent."""
    now = now or utcnow()
    changed = rowcount(
        session,
        update(Subscriber)
        .where(
            Subscriber.id == subscriber_id,
            Subscriber.status.in_([SubscriberStatus.ACTIVE, SubscriberStatus.PENDING]),
        )
        .values(status=SubscriberStatus.UNSUBSCRIBED, unsubscribed_at=now),
    )
    hashed = session.scalar(select(Subscriber.email_hash).where(Subscriber.id == subscriber_id))
    if hashed is not None:
        suppress(session, hashed, SuppressionReason.UNSUBSCRIBED)
    return UnsubscribeOutcome.UNSUBSCRIBED if changed else UnsubscribeOutcome.ALREADY_UNSUBSCRIBED


def update_preferences(
    session: Session,
    subscriber_id: int,
    *,
    name: str,
    topic_slugs: Sequence[str],
    timezone: str,
    digest_paused: bool,
) -> Subscriber:
    """Change what an active or pending subscriber receives and how they are greeted."""
    subscriber = session.get(Subscriber, subscriber_id, with_for_update=True)
    if subscriber is None or subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        raise SubscriberNotFoundError("there is no active subscription for this link")
    subscriber.topics = resolve_topics(session, topic_slugs)
    subscriber.name = name
    subscriber.timezone = timezone
    subscriber.digest_paused = digest_paused
    session.flush()
    return subscriber


def add_confirmed_subscriber(
    session: Session,
    *,
    email: str,
    name: str,
    topic_slugs: Sequence[str],
    timezone: str,
    consent: ConsentInfo,
    now: datetime | None = None,
) -> tuple[Subscriber, bool]:
    """Add an operator-imported subscriber whose consent was already collected elsewhere.

    Returns (subscriber, created). Never overrides an unsubscribe or suppression:
    those addresses are skipped and returned unchanged with created=False.
    """
    now = now or utcnow()
    topics = resolve_topics(session, topic_slugs)
    hashed = email_hash(email)
    existing = session.scalar(select(Subscriber).where(Subscriber.email_hash == hashed))
    if existing is not None:
        return existing, False
    if session.scalar(select(Suppression.id).where(Suppression.email_hash == hashed)):
        return Subscriber(email=email, status=SubscriberStatus.UNSUBSCRIBED), False
    subscriber = Subscriber(
        email=email,
        email_hash=hashed,
        name=name,
        timezone=timezone,
        topics=topics,
        status=SubscriberStatus.ACTIVE,
        confirmation_nonce=secrets.token_hex(8),
        created_at=now,
        confirmed_at=now,
    )
    session.add(subscriber)
    session.add(
        Consent(
            subscriber=subscriber,
            accepted_at=now,
            confirmed_at=now,
            source=consent.source,
            text_version=consent.text_version,
        )
    )
    session.flush()
    return subscriber, True


def list_subscribers(
    session: Session,
    *,
    status: SubscriberStatus | None = None,
    topic_slug: str | None = None,
    after_id: int = 0,
    limit: int = 500,
) -> Sequence[Subscriber]:
    """One keyset page of subscribers, oldest first."""
    query = select(Subscriber).where(Subscriber.id > after_id).order_by(Subscriber.id).limit(limit)
    if status is not None:
        query = query.where(Subscriber.status == status)
    if topic_slug is not None:
        query = query.where(Subscriber.topics.any(Topic.slug == topic_slug))
    return session.scalars(query).all()


def export_subscriber(session: Session, email: str) -> dict[str, Any]:
    """Everything stored about one address, as plain JSON-ready data (a data-access request)."""
    subscriber = get_subscriber_by_email(session, email)
    if subscriber is None:
        raise SubscriberNotFoundError(f"no subscriber with address {email}")
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "status": str(subscriber.status),
        "topics": subscriber.topic_slugs,
        "timezone": subscriber.timezone,
        "digest_paused": subscriber.digest_paused,
        "created_at": subscriber.created_at.isoformat(),
        "confirmed_at": _iso(subscriber.confirmed_at),
        "unsubscribed_at": _iso(subscriber.unsubscribed_at),
        "consents": [
            {
                "accepted_at": consent.accepted_at.isoformat(),
                "confirmed_at": _iso(consent.confirmed_at),
                "source": consent.source,
                "ip_address": consent.ip_address,
                "user_agent": consent.user_agent,
                "consent_text_version": consent.text_version,
            }
            for consent in subscriber.consents
        ],
    }


def erase_subscriber(session: Session, email: str) -> None:
    """Delete an address's personal data, keeping only a hashed suppression entry."""
    subscriber = get_subscriber_by_email(session, email)
    if subscriber is None:
        raise SubscriberNotFoundError(f"no subscriber with address {email}")
    suppress(session, subscriber.email_hash, SuppressionReason.ERASED)
    session.delete(subscriber)
    session.flush()


def expire_pending_signups(session: Session, *, older_than: timedelta) -> int:
    """Delete signups never confirmed within `older_than`; returns how many went."""
    cutoff = utcnow() - older_than
    return rowcount(
        session,
        delete(Subscriber).where(
            Subscriber.status == SubscriberStatus.PENDING,
            Subscriber.confirmed_at.is_(None),
            Subscriber.created_at < cutoff,
        ),
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
