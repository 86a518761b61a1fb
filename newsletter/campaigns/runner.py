"""The campaign runner: plan a campaign into the ledger, then send it in batches.

Every message has a Delivery row before it is sent. Its status moves
queued -> sending -> sent | failed | bounced in committed steps, batched: one
claim per batch, one result write per sub-batch. A killed worker leaves rows
in 'sending'; the sweeper puts them back after a timeout, so nothing is lost
and duplicates are bounded by what was in flight. The claim re-checks the
subscriber and the suppression list in the same statement, and the sender
re-checks at least every second or every 100 messages: unsubscribe wins.

The runner knows nothing of SMTP (a `Sender` is passed in) or of Celery
(work is queued by task name with `enqueue`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Engine, exists, func, literal, select, update
from sqlalchemy.orm import Session

from newsletter.campaigns.audience import audience_filter, mailable
from newsletter.campaigns.broadcast import BroadcastEdition
from newsletter.campaigns.digest import load_edition
from newsletter.campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
)
from newsletter.campaigns.segments import SegmentIn, segment_filter
from newsletter.config import Settings
from newsletter.db import UTCDateTime, dialect_insert, in_ids, rowcount, utcnow
from newsletter.delivery.mime import OutgoingMessage
from newsletter.delivery.sender import PermanentDeliveryError, Sender, TransientDeliveryError
from newsletter.errors import DomainError
from newsletter.queue import enqueue, enqueue_later
from newsletter.rendering.cache import RenderCache
from newsletter.rendering.personal import Recipient
from newsletter.subscribers.models import Subscriber, SuppressionReason, subscriber_topics
from newsletter.subscribers.service import suppress
from newsletter.subscribers.tokens import TokenSigner

log = logging.getLogger(__name__)

PLAN_CAMPAIGN = "newsletter.plan_campaign"
SEND_BATCH = "newsletter.send_batch"

UnitOfWork = Callable[[], AbstractContextManager[Session]]


class CampaignError(DomainError):
    """A campaign operation that does not apply (e.g. resuming a finished campaign)."""


@dataclass(frozen=True)
class RunnerConfig:
    plan_chunk: int = 1000
    # A planner run stops after this many chunks and queues its own continuation
    # behind the batches it queued, so planning a large audience never keeps a
    # worker process from sending for long.
    plan_chunks_per_run: int = 5
    batch_size: int = 200
    # Results are written every `result_every` messages: a crash repeats at most that many.
    result_every: int = 50
    recheck_every: int = 100
    recheck_seconds: float = 1.0
    max_attempts: int = 6
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0


class Edition(Protocol):
    def message_for(
        self, subscriber: Recipient, *, signer: TokenSigner
    ) -> OutgoingMessage | None: ...


# --- creating and steering campaigns ------------------------------------------------


def create_digest_campaign(
    session: Session, *, start: datetime, end: datetime, name: str | None = None
) -> Campaign:
    """A draft digest campaign for the articles published in [start, end)."""
    campaign = Campaign(
        kind=CampaignKind.DIGEST,
        name=name or f"Weekly digest {start:%Y-%m-%d} to {end:%Y-%m-%d}",
        status=CampaignStatus.DRAFT,
        period_start=start,
        period_end=end,
        audience={},
        created_at=utcnow(),
    )
    session.add(campaign)
    session.flush()
    return campaign


def create_broadcast_campaign(
    session: Session,
    *,
    subject: str,
    body_markdown: str,
    topic_slugs: Sequence[str] = (),
    segment: SegmentIn | None = None,
    name: str | None = None,
) -> Campaign:
    """A draft broadcast to a segment, or to the followers of `topic_slugs` (or everyone)."""
    segment = segment or SegmentIn(topics_any=list(topic_slugs))
    segment_filter(session, segment)  # refuses unknown topics before anything is written
    campaign = Campaign(
        kind=CampaignKind.BROADCAST,
        name=name or subject,
        status=CampaignStatus.DRAFT,
        subject=subject,
        body_markdown=body_markdown,
        audience=segment.model_dump(mode="json", exclude_defaults=True),
        created_at=utcnow(),
    )
    session.add(campaign)
    session.flush()
    return campaign


def _transition(
    session: Session,
    campaign_id: int,
    allowed: Sequence[CampaignStatus],
    new: CampaignStatus,
    **values: object,
) -> bool:
    return bool(
        rowcount(
            session,
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status.in_(allowed))
            .values(status=new, **values),
        )
    )


def _refuse(session: Session, campaign_id: int, action: str) -> CampaignError:
    status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    if status is None:
        return CampaignError(f"no campaign {campaign_id}")
    return CampaignError(f"cannot {action} campaign {campaign_id}: it is {status}")


def start_campaign(session: Session, campaign_id: int) -> None:
    """Begin sending now: plan the audience into the ledger, batch by batch."""
    now = utcnow()
    allowed = [CampaignStatus.DRAFT, CampaignStatus.SCHEDULED]
    if not _transition(session, campaign_id, allowed, CampaignStatus.RUNNING, started_at=now):
        raise _refuse(session, campaign_id, "start")
    enqueue(session, PLAN_CAMPAIGN, campaign_id)


def pause_campaign(session: Session, campaign_id: int) -> None:
    """Stop new sends; messages already handed over stay sent. Resume carries on."""
    if not _transition(session, campaign_id, [CampaignStatus.RUNNING], CampaignStatus.PAUSED):
        raise _refuse(session, campaign_id, "pause")


def resume_campaign(session: Session, campaign_id: int) -> None:
    """Carry on from the ledger: queued rows are sent, unplanned ones planned."""
    if not _transition(session, campaign_id, [CampaignStatus.PAUSED], CampaignStatus.RUNNING):
        raise _refuse(session, campaign_id, "resume")
    enqueue(session, PLAN_CAMPAIGN, campaign_id, True)


def cancel_campaign(session: Session, campaign_id: int) -> None:
    """Stop for good: nothing more is sent; queued rows become 'cancelled'."""
    allowed = [
        CampaignStatus.DRAFT,
        CampaignStatus.SCHEDULED,
        CampaignStatus.RUNNING,
        CampaignStatus.PAUSED,
    ]
    if not _transition(
        session, campaign_id, allowed, CampaignStatus.CANCELLED, finished_at=utcnow()
    ):
        raise _refuse(session, campaign_id, "cancel")
    session.execute(
        update(Delivery)
        .where(Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.CANCELLED)
    )


def finish_if_complete(session: Session, campaign_id: int) -> bool:
    """Mark a fully planned campaign done once no row is queued or sending."""
    open_rows = exists().where(
        Delivery.campaign_id == campaign_id,
        Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]),
    )
    return bool(
        rowcount(
            session,
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.status == CampaignStatus.RUNNING,
                Campaign.planned.is_(True),
                ~open_rows,
            )
            .values(status=CampaignStatus.DONE, finished_at=utcnow()),
        )
    )


# --- planning: the audience into the ledger --------------------------------------------


def _enqueue_batches(
    session: Session, campaign_id: int, delivery_ids: Sequence[int], batch_size: int
) -> None:
    for start in range(0, len(delivery_ids), batch_size):
        enqueue(session, SEND_BATCH, campaign_id, list(delivery_ids[start : start + batch_size]))


def plan_campaign(
    units: UnitOfWork, campaign_id: int, *, config: RunnerConfig, requeue: bool = False
) -> int:
    """Walk the audience by keyset in chunks, each committed with its send batches.

    The cursor moves in the same transaction as the chunk's Delivery rows, so a
    planner that dies resumes where the ledger says; rows already planned are
    skipped by the unique (campaign, subscriber) key. With `requeue`, rows left
    queued (by a pause) are queued for sending again first.
    """
    if requeue:
        _requeue_waiting(units, campaign_id, config=config)
    planned = 0
    for chunk in range(config.plan_chunks_per_run + 1):
        with units() as session:
            campaign = session.get(Campaign, campaign_id, with_for_update=True)
            if campaign is None or campaign.status != CampaignStatus.RUNNING:
                return planned
            if campaign.planned:
                finish_if_complete(session, campaign_id)
                return planned
            ids = session.scalars(
                select(Subscriber.id)
                .where(Subscriber.id > campaign.cursor, audience_filter(session, campaign))
                .order_by(Subscriber.id)
                .limit(config.plan_chunk)
            ).all()
            if not ids:
                campaign.planned = True
                session.flush()
                finish_if_complete(session, campaign_id)
                return planned
            if chunk == config.plan_chunks_per_run:
                enqueue(session, PLAN_CAMPAIGN, campaign_id)
                return planned
            # The chunk's rows are written by INSERT ... SELECT over the same range
            # and filter: building a 1,000-row VALUES list cost more than the sends.
            chunk_rows = select(
                literal(campaign_id),
                Subscriber.id,
                literal(DeliveryStatus.QUEUED.value),
                literal(0),
                literal(utcnow(), UTCDateTime()),
                literal(""),
            ).where(
                Subscriber.id > campaign.cursor,
                Subscriber.id <= ids[-1],
                audience_filter(session, campaign),
            )
            delivery_ids = session.scalars(
                dialect_insert(session, Delivery)
                .from_select(
                    [
                        "campaign_id",
                        "subscriber_id",
                        "status",
                        "attempts",
                        "queued_at",
                        "last_error",
                    ],
                    chunk_rows,
                )
                .on_conflict_do_nothing(index_elements=["campaign_id", "subscriber_id"])
                .returning(Delivery.id)
            ).all()
            campaign.cursor = ids[-1]
            _enqueue_batches(session, campaign_id, sorted(delivery_ids), config.batch_size)
            planned += len(delivery_ids)
    return planned


def _requeue_waiting(units: UnitOfWork, campaign_id: int, *, config: RunnerConfig) -> None:
    after = 0
    while True:
        with units() as session:
            ids = session.scalars(
                select(Delivery.id)
                .where(
                    Delivery.campaign_id == campaign_id,
                    Delivery.status == DeliveryStatus.QUEUED,
                    Delivery.id > after,
                )
                .order_by(Delivery.id)
                .limit(config.plan_chunk)
            ).all()
            if not ids:
                return
            session.execute(
                update(Delivery).where(in_ids(session, Delivery.id, ids)).values(queued_at=utcnow())
            )
            _enqueue_batches(session, campaign_id, ids, config.batch_size)
            after = ids[-1]


# --- sending a batch ----------------------------------------------------------------------


@dataclass
class BatchOutcome:
    """What one send_batch did, for logs and tests."""

    claimed: int = 0
    sent: int = 0
    bounced: int = 0
    suppressed: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0
    stopped: str = ""
    retry_ids: list[int] = field(default_factory=list)


# Keyed by database, id and creation time: SQLite may reuse the id of a deleted row.
_edition_cache: dict[tuple[str, int, str], Edition] = {}


def edition_for(
    session: Session,
    campaign: Campaign,
    *,
    settings: Settings,
    render_cache: RenderCache | None = None,
) -> Edition:
    """The campaign's edition, loaded once per process, its variants rendered once."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    key = (str(engine.url), campaign.id, campaign.created_at.isoformat())
    edition = _edition_cache.get(key)
    if edition is None:
        if len(_edition_cache) >= 8:
            _edition_cache.pop(next(iter(_edition_cache)))
        if campaign.kind == CampaignKind.DIGEST:
            assert campaign.period_start is not None and campaign.period_end is not None
            edition = load_edition(
                session, start=campaign.period_start, end=campaign.period_end, settings=settings
            )
            edition.render_cache = render_cache
            edition.cache_key = f"campaign-{campaign.id}-{campaign.created_at.timestamp():.6f}"
        else:
            edition = BroadcastEdition(
                subject=campaign.subject,
                body_markdown=campaign.body_markdown,
                settings=settings,
                campaign_id=f"campaign-{campaign.id}",
            )
        _edition_cache[key] = edition
    return edition


def _recipients(session: Session, subscriber_ids: Sequence[int]) -> dict[int, Recipient]:
    """Plain rows for a batch: building ORM objects cost more than the MIME did."""
    topics: dict[int, list[int]] = {}
    for subscriber_id, topic_id in session.execute(
        select(subscriber_topics.c.subscriber_id, subscriber_topics.c.topic_id).where(
            in_ids(session, subscriber_topics.c.subscriber_id, subscriber_ids)
        )
    ):
        topics.setdefault(subscriber_id, []).append(topic_id)
    return {
        row.id: Recipient(row.id, row.email, row.name, tuple(topics.get(row.id, ())))
        for row in session.execute(
            select(Subscriber.id, Subscriber.email, Subscriber.name).where(
                in_ids(session, Subscriber.id, subscriber_ids)
            )
        )
    }


def _claim(
    session: Session, campaign_id: int, delivery_ids: Sequence[int], now: datetime
) -> list[tuple[int, int]]:
    """Move the still-wanted rows to 'sending' in one statement; the rest to 'suppressed'.

    The subscriber and suppression checks are part of the same UPDATE, so an
    unsubscribe committed before the claim can never be overtaken by it.
    """
    running = exists().where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.RUNNING)
    wanted = exists().where(Subscriber.id == Delivery.subscriber_id, mailable())
    claimed = session.execute(
        update(Delivery)
        .where(
            in_ids(session, Delivery.id, delivery_ids),
            Delivery.campaign_id == campaign_id,
            Delivery.status == DeliveryStatus.QUEUED,
            running,
            wanted,
        )
        .values(status=DeliveryStatus.SENDING, claimed_at=now, attempts=Delivery.attempts + 1)
        .returning(Delivery.id, Delivery.subscriber_id)
    ).all()
    session.execute(
        update(Delivery)
        .where(
            in_ids(session, Delivery.id, delivery_ids),
            Delivery.status == DeliveryStatus.QUEUED,
            running,
            ~wanted,
        )
        .values(status=DeliveryStatus.SUPPRESSED)
    )
    return [(row[0], row[1]) for row in claimed]


def _unwanted(
    session: Session, campaign_id: int, subscriber_ids: Sequence[int]
) -> tuple[str, set[int]]:
    """(campaign status, subscribers who left or were suppressed since the claim)."""
    status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    gone = session.scalars(
        select(Subscriber.id).where(in_ids(session, Subscriber.id, subscriber_ids), ~mailable())
    ).all()
    return str(status), set(gone)


def _write_results(
    session: Session,
    *,
    sent: Sequence[int],
    bounced: Sequence[tuple[int, str]],
    suppressed: Sequence[int],
    now: datetime,
) -> None:
    if sent:
        session.execute(
            update(Delivery)
            .where(in_ids(session, Delivery.id, sent), Delivery.status == DeliveryStatus.SENDING)
            .values(status=DeliveryStatus.SENT, sent_at=now)
        )
    if suppressed:
        session.execute(
            update(Delivery)
            .where(
                in_ids(session, Delivery.id, suppressed), Delivery.status == DeliveryStatus.SENDING
            )
            .values(status=DeliveryStatus.SUPPRESSED)
        )
    for delivery_id, error in bounced:
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(status=DeliveryStatus.BOUNCED, last_error=error[:300])
        )
        hashed = session.scalar(
            select(Subscriber.email_hash)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.id == delivery_id)
        )
        if hashed is not None:
            suppress(session, hashed, SuppressionReason.BOUNCED)


def retry_delay(attempt: int, config: RunnerConfig) -> float:
    """Exponential backoff with full jitter, capped."""
    ceiling = min(config.retry_max_seconds, config.retry_base_seconds * 2 ** max(0, attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def send_batch(
    units: UnitOfWork,
    campaign_id: int,
    delivery_ids: Sequence[int],
    *,
    sender: Sender,
    settings: Settings,
    signer: TokenSigner,
    config: RunnerConfig,
    acquire: Callable[[int], object] | None = None,
    render_cache: RenderCache | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> BatchOutcome:
    """Claim, send and record one batch of the ledger. Safe to run twice at once."""
    outcome = BatchOutcome()
    with units() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            outcome.stopped = "campaign gone"
            return outcome
        claimed = _claim(session, campaign_id, delivery_ids, utcnow())
        outcome.claimed = len(claimed)
        if not claimed:
            finish_if_complete(session, campaign_id)
            outcome.stopped = "nothing to claim"
            return outcome
        edition = edition_for(session, campaign, settings=settings, render_cache=render_cache)
        subscribers = _recipients(session, [sid for _, sid in claimed])

    pending: list[tuple[int, int]] = list(claimed)
    sent: list[int] = []
    bounced: list[tuple[int, str]] = []
    suppressed: list[int] = []
    transient: list[tuple[int, str]] = []
    last_check, since_check = clock(), 0
    permits = 0

    def flush(final: bool = False) -> None:
        with units() as session:
            _write_results(session, sent=sent, bounced=bounced, suppressed=suppressed, now=utcnow())
            if final:
                _release(session, campaign_id, transient, pending, outcome, config)
        outcome.sent += len(sent)
        outcome.bounced += len(bounced)
        outcome.suppressed += len(suppressed)
        sent.clear()
        bounced.clear()
        suppressed.clear()

    try:
        while pending:
            if (
                since_check >= config.recheck_every
                or clock() - last_check >= config.recheck_seconds
            ):
                with units() as session:
                    status, gone = _unwanted(session, campaign_id, [s for _, s in pending])
                last_check, since_check = clock(), 0
                if status != CampaignStatus.RUNNING:
                    outcome.stopped = f"campaign {status}"
                    break
                if gone:
                    suppressed.extend(d for d, s in pending if s in gone)
                    pending = [(d, s) for d, s in pending if s not in gone]
                    continue
            delivery_id, subscriber_id = pending[0]
            subscriber = subscribers.get(subscriber_id)
            message = edition.message_for(subscriber, signer=signer) if subscriber else None
            if message is None:
                suppressed.append(delivery_id)
                pending.pop(0)
                continue
            if acquire is not None and permits == 0:
                permits = min(10, len(pending))
                acquire(permits)
            try:
                sender.send(message)
                sent.append(delivery_id)
            except PermanentDeliveryError as e:
                bounced.append((delivery_id, str(e)))
            except TransientDeliveryError as e:
                transient.append((delivery_id, str(e)))
            pending.pop(0)
            permits = max(0, permits - 1)
            since_check += 1
            if len(sent) + len(bounced) >= config.result_every:
                flush()
    finally:
        sender.close()
        flush(final=True)
    return outcome


def _release(
    session: Session,
    campaign_id: int,
    transient: list[tuple[int, str]],
    unsent: list[tuple[int, int]],
    outcome: BatchOutcome,
    config: RunnerConfig,
) -> None:
    """Put back what this batch did not hand over: retries, and rows a pause stopped."""
    now = utcnow()
    if unsent:
        outcome.released = rowcount(
            session,
            update(Delivery)
            .where(
                in_ids(session, Delivery.id, [d for d, _ in unsent]),
                Delivery.status == DeliveryStatus.SENDING,
            )
            .values(
                status=DeliveryStatus.QUEUED,
                queued_at=now,
                attempts=Delivery.attempts - 1,
            ),
        )
        status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
        if status == CampaignStatus.CANCELLED:
            session.execute(
                update(Delivery)
                .where(
                    Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.QUEUED
                )
                .values(status=DeliveryStatus.CANCELLED)
            )
    if transient:
        ids = [d for d, _ in transient]
        attempts = dict(
            session.execute(
                select(Delivery.id, Delivery.attempts).where(in_ids(session, Delivery.id, ids))
            ).all()
        )
        for delivery_id, error in transient:
            done_trying = attempts.get(delivery_id, 0) >= config.max_attempts
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.SENDING)
                .values(
                    status=DeliveryStatus.FAILED if done_trying else DeliveryStatus.QUEUED,
                    queued_at=now,
                    last_error=error[:300],
                )
            )
            if not done_trying:
                outcome.retry_ids.append(delivery_id)
            else:
                outcome.failed += 1
        outcome.retrying = len(outcome.retry_ids)
        if outcome.retry_ids:
            attempt = max(attempts.get(d, 1) for d in outcome.retry_ids)
            delay = retry_delay(attempt, config)
            enqueue_later(session, SEND_BATCH, delay, campaign_id, outcome.retry_ids)
    finish_if_complete(session, campaign_id)


# --- recovery and progress ----------------------------------------------------------------


def recover_stale_deliveries(
    session: Session, *, older_than: timedelta, config: RunnerConfig
) -> int:
    """Requeue rows a dead worker left 'sending', and queued rows whose task was lost."""
    cutoff = utcnow() - older_than
    running = exists().where(
        Campaign.id == Delivery.campaign_id, Campaign.status == CampaignStatus.RUNNING
    )
    stale = session.execute(
        select(Delivery.campaign_id, Delivery.id).where(
            running,
            ((Delivery.status == DeliveryStatus.SENDING) & (Delivery.claimed_at < cutoff))
            | ((Delivery.status == DeliveryStatus.QUEUED) & (Delivery.queued_at < cutoff)),
        )
    ).all()
    if not stale:
        return 0
    ids = [delivery_id for _, delivery_id in stale]
    session.execute(
        update(Delivery)
        .where(in_ids(session, Delivery.id, ids))
        .values(status=DeliveryStatus.QUEUED, queued_at=utcnow())
    )
    by_campaign: dict[int, list[int]] = {}
    for campaign_id, delivery_id in stale:
        by_campaign.setdefault(campaign_id, []).append(delivery_id)
    for campaign_id, delivery_ids in by_campaign.items():
        _enqueue_batches(session, campaign_id, sorted(delivery_ids), config.batch_size)
    return len(ids)


@dataclass(frozen=True)
class Progress:
    campaign_id: int
    status: str
    counts: dict[str, int]
    planned: bool
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def handed_over(self) -> int:
        return sum(self.counts.get(s, 0) for s in ("sent", "bounced", "failed", "suppressed"))

    def rate_per_second(self, now: datetime) -> float:
        if self.started_at is None:
            return 0.0
        elapsed = ((self.finished_at or now) - self.started_at).total_seconds()
        return self.counts.get("sent", 0) / elapsed if elapsed > 0 else 0.0

    def eta_seconds(self, now: datetime) -> float | None:
        rate = self.rate_per_second(now)
        left = self.counts.get("queued", 0) + self.counts.get("sending", 0)
        return left / rate if rate > 0 else None


def campaigns_progress(session: Session, campaigns: Sequence[Campaign]) -> dict[int, Progress]:
    """Counts by delivery status for several campaigns, in one grouped ledger query."""
    counts: dict[int, dict[str, int]] = {campaign.id: {} for campaign in campaigns}
    if campaigns:
        rows = session.execute(
            select(Delivery.campaign_id, Delivery.status, func.count())
            .where(in_ids(session, Delivery.campaign_id, list(counts)))
            .group_by(Delivery.campaign_id, Delivery.status)
        )
        for campaign_id, status, count in rows:
            counts[campaign_id][str(status)] = int(count)
    return {
        campaign.id: Progress(
            campaign_id=campaign.id,
            status=str(campaign.status),
            counts=counts[campaign.id],
            planned=campaign.planned,
            started_at=campaign.started_at,
            finished_at=campaign.finished_at,
        )
        for campaign in campaigns
    }


def campaign_progress(session: Session, campaign_id: int) -> Progress:
    """Counts by delivery status, read from the ledger."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignError(f"no campaign {campaign_id}")
    return campaigns_progress(session, [campaign])[campaign_id]


def iter_campaigns(session: Session, *, limit: int = 50) -> Iterator[Campaign]:
    yield from session.scalars(select(Campaign).order_by(Campaign.id.desc()).limit(limit))
