"""The campaign runner in-process: ledger first, unsubscribe wins, pause and resume."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.campaigns import runner
from newsletter.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from newsletter.config import Settings
from newsletter.db import utcnow
from newsletter.delivery.mime import OutgoingMessage
from newsletter.delivery.sender import (
    PermanentDeliveryError,
    Sender,
    TransientDeliveryError,
    make_sender,
)
from newsletter.subscribers import service as subscribers
from newsletter.subscribers.models import Subscriber, SubscriberStatus
from newsletter.subscribers.tokens import TokenSigner, signer_for
from tests.conftest import SmtpSink
from tests.factories import make_article, make_subscriber

CONFIG = runner.RunnerConfig(batch_size=50, result_every=2, recheck_every=1)


@pytest.fixture
def signer(settings: Settings) -> TokenSigner:
    return signer_for(settings.effective_secret_key, settings.confirm_token_max_age_seconds)


def units_in(session: Session) -> Callable[[], AbstractContextManager[Session]]:
    """Units of work inside the test's transaction: each a savepoint, undone on error."""

    @contextmanager
    def unit() -> Iterator[Session]:
        with session.begin_nested():
            yield session

    return unit


class RecordingSender:
    """A Sender that records what it was handed and can act between messages."""

    def __init__(self, on_send: Callable[[int], None] | None = None) -> None:
        self.sent: list[str] = []
        self.on_send = on_send
        self.closed = False

    def send(self, message: OutgoingMessage) -> None:
        if self.on_send is not None:
            self.on_send(len(self.sent))
        self.sent.append(message.rcpt_to)

    def close(self) -> None:
        self.closed = True


def _digest_campaign(session: Session) -> Campaign:
    now = utcnow()
    campaign = runner.create_digest_campaign(session, start=now - timedelta(days=7), end=now)
    campaign.status = CampaignStatus.RUNNING
    session.flush()
    return campaign


def _plan(session: Session, campaign: Campaign) -> list[int]:
    runner.plan_campaign(units_in(session), campaign.id, config=CONFIG)
    return list(
        session.scalars(
            select(Delivery.id).where(Delivery.campaign_id == campaign.id).order_by(Delivery.id)
        )
    )


def _send(
    session: Session,
    campaign: Campaign,
    ids: list[int],
    sender: Sender,
    settings: Settings,
    signer: TokenSigner,
) -> runner.BatchOutcome:
    return runner.send_batch(
        units_in(session),
        campaign.id,
        ids,
        sender=sender,
        settings=settings,
        signer=signer,
        config=CONFIG,
    )


def _statuses(session: Session, campaign: Campaign) -> dict[str, str]:
    rows = session.execute(
        select(Subscriber.email, Delivery.status)
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.campaign_id == campaign.id)
    ).all()
    return {email: str(status) for email, status in rows}


@pytest.fixture
def readers(session: Session) -> list[Subscriber]:
    make_article(session, topics=["spine-mri"])
    make_article(session, topics=["headaches"])
    return [
        make_subscriber(session, name="Ada", topics=("spine-mri",)),
        make_subscriber(session, name="Bo", topics=("headaches", "neck-pain")),
        make_subscriber(session, name="Cy", topics=("spine-mri", "headaches")),
        make_subscriber(session, name="Di", topics=("neck-pain",)),  # nothing new for Di
        make_subscriber(session, name="Ed", topics=("spine-mri",), status=SubscriberStatus.PENDING),
    ]


def test_the_ledger_is_written_before_anything_is_sent_and_records_every_send(
    session: Session, settings: Settings, signer: TokenSigner, smtp_sink: SmtpSink,
    readers: list[Subscriber],
) -> None:  # fmt: skip
    paused = make_subscriber(session, topics=("spine-mri",))
    paused.digest_paused = True
    campaign = _digest_campaign(session)

    ids = _plan(session, campaign)
    assert len(ids) == 3
    assert set(_statuses(session, campaign).values()) == {"queued"}

    outcome = _send(
        session, campaign, ids, make_sender(settings, smtp_url=smtp_sink.url), settings, signer
    )
    assert (outcome.claimed, outcome.sent) == (3, 3)
    received = sorted(message.to for message in smtp_sink.wait_for(3))  # type: ignore[attr-defined]
    assert received == sorted(reader.email for reader in readers[:3])
    assert set(_statuses(session, campaign).values()) == {"sent"}
    session.refresh(campaign)
    assert campaign.status == CampaignStatus.DONE and campaign.planned

    again = _send(session, campaign, ids, RecordingSender(), settings, signer)
    assert (again.claimed, again.sent) == (0, 0)


def test_planning_twice_adds_no_second_row(session: Session, readers: list[Subscriber]) -> None:
    campaign = _digest_campaign(session)
    first = _plan(session, campaign)
    campaign.planned, campaign.cursor = False, 0
    session.flush()
    assert _plan(session, campaign) == first


def test_an_unsubscribe_before_the_claim_stops_the_message(
    session: Session, settings: Settings, signer: TokenSigner, readers: list[Subscriber]
) -> None:
    campaign = _digest_campaign(session)
    ids = _plan(session, campaign)
    subscribers.unsubscribe(session, readers[1].id)

    sender = RecordingSender()
    outcome = _send(session, campaign, ids, sender, settings, signer)
    assert readers[1].email not in sender.sent
    assert outcome.sent == 2
    assert _statuses(session, campaign)[readers[1].email] == "suppressed"


def test_an_unsubscribe_mid_batch_stops_the_rest(
    session: Session, settings: Settings, signer: TokenSigner, readers: list[Subscriber]
) -> None:
    campaign = _digest_campaign(session)
    ids = _plan(session, campaign)
    last = readers[2]

    def unsubscribe_after_first(count: int) -> None:
        if count == 1:
            subscribers.unsubscribe(session, last.id)

    sender = RecordingSender(unsubscribe_after_first)
    _send(session, campaign, ids, sender, settings, signer)
    assert last.email not in sender.sent
    assert _statuses(session, campaign)[last.email] == "suppressed"


def test_pause_stops_within_the_batch_and_resume_sends_the_rest_once(
    session: Session, settings: Settings, signer: TokenSigner, readers: list[Subscriber]
) -> None:
    campaign = _digest_campaign(session)
    ids = _plan(session, campaign)

    def pause_during_first(count: int) -> None:
        if count == 0:  # the first message is already on its way
            runner.pause_campaign(session, campaign.id)

    first = RecordingSender(pause_during_first)
    outcome = _send(session, campaign, ids, first, settings, signer)
    assert len(first.sent) == 1 and outcome.stopped == "campaign paused"
    assert outcome.released == 2
    assert sorted(_statuses(session, campaign).values()) == ["queued", "queued", "sent"]

    runner.resume_campaign(session, campaign.id)
    second = RecordingSender()
    _send(session, campaign, ids, second, settings, signer)
    assert sorted(first.sent + second.sent) == sorted(r.email for r in readers[:3])
    session.refresh(campaign)
    assert campaign.status == CampaignStatus.DONE


def test_cancel_stops_for_good(
    session: Session, settings: Settings, signer: TokenSigner, readers: list[Subscriber]
) -> None:
    campaign = _digest_campaign(session)
    ids = _plan(session, campaign)
    runner.cancel_campaign(session, campaign.id)
    sender = RecordingSender()
    _send(session, campaign, ids, sender, settings, signer)
    assert sender.sent == []
    assert set(_statuses(session, campaign).values()) == {"cancelled"}
    with pytest.raises(runner.CampaignError, match="cancelled"):
        runner.resume_campaign(session, campaign.id)


class FailingSender(RecordingSender):
    def __init__(self, failures: dict[str, Exception]) -> None:
        super().__init__()
        self.failures = failures

    def send(self, message: OutgoingMessage) -> None:
        if message.rcpt_to in self.failures:
            raise self.failures[message.rcpt_to]
        super().send(message)


def test_a_5xx_bounces_and_suppresses_and_a_4xx_is_retried_then_fails(
    session: Session, settings: Settings, signer: TokenSigner, readers: list[Subscriber]
) -> None:
    campaign = _digest_campaign(session)
    ids = _plan(session, campaign)
    bad, busy = readers[0], readers[1]
    sender = FailingSender(
        {
            bad.email: PermanentDeliveryError("550 5.1.1 no such user"),
            busy.email: TransientDeliveryError("451 4.7.1 try later"),
        }
    )
    outcome = _send(session, campaign, ids, sender, settings, signer)
    assert (outcome.sent, outcome.bounced, outcome.retrying) == (1, 1, 1)
    statuses = _statuses(session, campaign)
    assert statuses[bad.email] == "bounced" and statuses[busy.email] == "queued"
    assert subscribers.suppression_reason(session, bad.email) is not None

    for _ in range(CONFIG.max_attempts - 1):
        _send(session, campaign, outcome.retry_ids, sender, settings, signer)
    assert _statuses(session, campaign)[busy.email] == "failed"
    session.refresh(campaign)
    assert campaign.status == CampaignStatus.DONE


def test_the_sweeper_requeues_rows_a_dead_worker_left_sending(
    session: Session, readers: list[Subscriber]
) -> None:
    campaign = _digest_campaign(session)
    ids = _plan(session, campaign)
    long_ago = utcnow() - timedelta(hours=1)
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids[:2]))
        .values(status=DeliveryStatus.SENDING, claimed_at=long_ago)
    )
    session.execute(update(Delivery).where(Delivery.id == ids[2]).values(queued_at=utcnow()))
    recovered = runner.recover_stale_deliveries(
        session, older_than=timedelta(minutes=10), config=CONFIG
    )
    assert recovered == 2
    assert set(_statuses(session, campaign).values()) == {"queued"}


def test_progress_counts_come_from_the_ledger(
    session: Session, settings: Settings, signer: TokenSigner, readers: list[Subscriber]
) -> None:
    campaign = _digest_campaign(session)
    campaign.started_at = utcnow() - timedelta(seconds=10)
    ids = _plan(session, campaign)
    _send(session, campaign, ids[:1], RecordingSender(), settings, signer)
    progress = runner.campaign_progress(session, campaign.id)
    assert progress.counts == {"sent": 1, "queued": 2}
    assert progress.total == 3 and progress.rate_per_second(utcnow()) > 0
    assert progress.eta_seconds(utcnow()) is not None


def test_broadcast_to_followers_of_a_topic(
    session: Session, settings: Settings, signer: TokenSigner, readers: list[Subscriber]
) -> None:
    campaign = runner.create_broadcast_campaign(
        session,
        subject="Our clinic opens on Saturdays",
        body_markdown="From December, **Saturday** appointments.",
        topic_slugs=["neck-pain"],
    )
    campaign.status = CampaignStatus.RUNNING
    ids = _plan(session, campaign)
    sender = RecordingSender()
    _send(session, campaign, ids, sender, settings, signer)
    assert sorted(sender.sent) == sorted([readers[1].email, readers[3].email])


def test_steering_a_campaign_in_the_wrong_state_is_refused(session: Session) -> None:
    campaign = _digest_campaign(session)
    with pytest.raises(runner.CampaignError, match="cannot start"):
        runner.start_campaign(session, campaign.id)
    with pytest.raises(runner.CampaignError, match="no campaign"):
        runner.pause_campaign(session, 999_999)


def test_a_large_audience_is_planned_in_runs_that_queue_their_continuation(
    session: Session, readers: list[Subscriber]
) -> None:
    campaign = _digest_campaign(session)
    small = runner.RunnerConfig(plan_chunk=1, plan_chunks_per_run=2)
    first = runner.plan_campaign(units_in(session), campaign.id, config=small)
    session.refresh(campaign)
    assert first == 2 and not campaign.planned
    second = runner.plan_campaign(units_in(session), campaign.id, config=small)
    session.refresh(campaign)
    assert second == 1 and campaign.planned
    assert len(_statuses(session, campaign)) == 3


def test_broadcast_to_a_segment_compiled_to_sql(
    session: Session, settings: Settings, signer: TokenSigner, readers: list[Subscriber]
) -> None:
    from newsletter.campaigns.segments import SegmentIn

    campaign = runner.create_broadcast_campaign(
        session,
        subject="Spine and headache news together",
        body_markdown="Both topics this time.",
        segment=SegmentIn(topics_all=["spine-mri", "headaches"]),
    )
    campaign.status = CampaignStatus.RUNNING
    ids = _plan(session, campaign)
    sender = RecordingSender()
    _send(session, campaign, ids, sender, settings, signer)
    assert sender.sent == [readers[2].email]


def test_a_broadcast_to_unknown_topics_is_refused(session: Session) -> None:
    from newsletter.content.service import UnknownTopicsError

    with pytest.raises(UnknownTopicsError, match="astrology"):
        runner.create_broadcast_campaign(
            session, subject="x", body_markdown="y", topic_slugs=["astrology"]
        )
    assert session.scalar(select(Campaign)) is None
