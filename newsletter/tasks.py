"""Celery tasks: thin shells that open a unit of work and call domain code."""

from __future__ import annotations

import logging
from datetime import timedelta

from newsletter.campaigns import runner
from newsletter.config import Settings, get_settings
from newsletter.content.ingest import ingest_configured_feeds
from newsletter.db import unit_of_work
from newsletter.delivery.ratelimit import limits_for
from newsletter.delivery.sender import SMTPConfig, TransientDeliveryError, make_sender
from newsletter.queue import celery_app, redis_client
from newsletter.rendering.cache import RedisRenderCache
from newsletter.subscribers import service as subscribers
from newsletter.subscribers.emails import LifecycleEmail, send_lifecycle_email
from newsletter.subscribers.tokens import signer_for

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


def runner_config(settings: Settings) -> runner.RunnerConfig:
    """The campaign engine's knobs, from settings."""
    return runner.RunnerConfig(
        batch_size=settings.campaign_batch_size,
        retry_base_seconds=settings.campaign_retry_base_seconds,
    )


@celery_app.task(name=runner.PLAN_CAMPAIGN)
def plan_campaign(campaign_id: int, requeue: bool = False) -> int:
    """Plan a running campaign's audience into the ledger and queue its send batches."""
    settings = get_settings()
    planned = runner.plan_campaign(
        unit_of_work, campaign_id, config=runner_config(settings), requeue=requeue
    )
    log.info("campaign %s: %d deliveries planned", campaign_id, planned)
    return planned


@celery_app.task(name=runner.SEND_BATCH, soft_time_limit=240, time_limit=300)
def send_batch(campaign_id: int, delivery_ids: list[int]) -> dict[str, int | str]:
    """Send one batch of a campaign over one SMTP connection, within the relay's limits."""
    settings = get_settings()
    relay = SMTPConfig.from_url(settings.effective_smtp_url)
    limiter, slots = limits_for(
        redis_client(),
        f"{relay.host}:{relay.port}",
        per_second=settings.smtp_rate_per_second,
        max_connections=settings.smtp_max_connections,
    )
    with slots.slot():
        outcome = runner.send_batch(
            unit_of_work,
            campaign_id,
            delivery_ids,
            sender=make_sender(settings),
            settings=settings,
            signer=signer_for(
                settings.effective_secret_key, settings.confirm_token_max_age_seconds
            ),
            config=runner_config(settings),
            acquire=None if limiter.unlimited else limiter.acquire,
            render_cache=RedisRenderCache(redis_client()),
        )
    log.info("campaign %s batch: %s", campaign_id, outcome)
    return {
        "sent": outcome.sent,
        "bounced": outcome.bounced,
        "suppressed": outcome.suppressed,
        "retrying": outcome.retrying,
        "stopped": outcome.stopped,
    }


@celery_app.task(name="newsletter.recover_stale_deliveries")
def recover_stale_deliveries() -> int:
    """Requeue deliveries a dead worker left behind (run by beat every minute)."""
    settings = get_settings()
    with unit_of_work() as session:
        recovered = runner.recover_stale_deliveries(
            session,
            older_than=timedelta(seconds=settings.stale_sending_seconds),
            config=runner_config(settings),
        )
    if recovered:
        log.warning("requeued %d stale deliveries", recovered)
    return recovered


@celery_app.task(name="newsletter.plan_weekly_digest")
def plan_weekly_digest() -> list[dict[str, object]]:
    """Queue the weekly digest for subscribers whose local send time has come (beat)."""
    from newsletter.campaigns.weekly import plan_weekly_digest as plan
    from newsletter.db import utcnow

    settings = get_settings()
    with unit_of_work() as session:
        plans = plan(
            session, now=utcnow(), settings=settings, batch_size=settings.campaign_batch_size
        )
    for week in plans:
        log.info(
            "weekly digest campaign %s: %d queued, %d skipped as late (zones due: %s)",
            week.campaign_id,
            week.queued,
            week.skipped_late,
            ", ".join(week.due_zones) or "none",
        )
    return [{"campaign": p.campaign_id, "queued": p.queued, "late": p.skipped_late} for p in plans]


@celery_app.task(name="newsletter.start_due_campaigns")
def start_due_campaigns() -> list[int]:
    """Start every scheduled campaign whose send time has come (beat, every minute)."""
    from newsletter.campaigns.schedule import start_due_campaigns as start_due
    from newsletter.db import utcnow

    with unit_of_work() as session:
        started = start_due(session, utcnow())
    if started:
        log.info("started scheduled campaigns %s", started)
    return started
