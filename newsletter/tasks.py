"""Celery tasks: thin shells that open a unit of work and call domain code."""

from __future__ import annotations

import logging
from datetime import timedelta

from newsletter.config import get_settings
from newsletter.content.ingest import ingest_configured_feeds
from newsletter.db import unit_of_work
from newsletter.delivery.sender import TransientDeliveryError, make_sender
from newsletter.queue import celery_app
from newsletter.subscribers import service as subscribers
from newsletter.subscribers.emails import LifecycleEmail, send_lifecycle_email

log = logging.getLogger(__name__)

_RETRYING = {
    "autoretry_for": (TransientDeliveryError,),
    "retry_backoff": 5,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 8,
}


def _send(subscriber_id: int, kind: LifecycleEmail) -> str | None:
    settings = get_settings()
    with unit_of_work() as session:
        skipped = send_lifecycle_email(
            session,
            subscriber_id,
            kind,
            settings=settings,
            sender=make_sender(settings),
        )
    if skipped:
        log.info("%s email to subscriber %s skipped: %s", kind, subscriber_id, skipped)
    return skipped


@celery_app.task(name=subscribers.SEND_CONFIRMATION, **_RETRYING)
def send_confirmation_email(subscriber_id: int) -> str | None:
    """Send the double opt-in link to a pending subscriber."""
    return _send(subscriber_id, LifecycleEmail.CONFIRM)


@celery_app.task(name=subscribers.SEND_WELCOME, **_RETRYING)
def send_welcome_email(subscriber_id: int) -> str | None:
    """Greet a subscriber who has just confirmed."""
    return _send(subscriber_id, LifecycleEmail.WELCOME)


@celery_app.task(name=subscribers.SEND_ALREADY_SUBSCRIBED, **_RETRYING)
def send_already_subscribed_email(subscriber_id: int) -> str | None:
    """Tell an active subscriber that a new signup for their address changed nothing."""
    return _send(subscriber_id, LifecycleEmail.ALREADY_SUBSCRIBED)


@celery_app.task(name="newsletter.expire_pending_signups")
def expire_pending_signups(days: int = 30) -> int:
    """Delete signups left unconfirmed for `days` days (their consent never came)."""
    with unit_of_work() as session:
        removed = subscribers.expire_pending_signups(session, older_than=timedelta(days=days))
    log.info("expired %d unconfirmed signups", removed)
    return removed


@celery_app.task(name="newsletter.ingest_feeds")
def ingest_feeds() -> dict[str, str]:
    """Poll every stored feed and add or update its articles."""
    results = ingest_configured_feeds(unit_of_work)
    outcomes = {
        url: result if isinstance(result, str) else result.describe()
        for url, result in results.items()
    }
    for url, outcome in outcomes.items():
        log.info("feed %s: %s", url, outcome)
    return outcomes
