"""The weekly digest at each subscriber's local time, with a frozen clock."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.campaigns import runner
from newsletter.campaigns.models import Campaign, Delivery, DeliveryStatus
from newsletter.campaigns.weekly import local_send_time, plan_weekly_digest, week_period
from newsletter.config import Settings
from newsletter.db import make_engine
from newsletter.delivery.sender import make_sender
from newsletter.subscribers.tokens import signer_for
from tests.conftest import QueuedTasks, SmtpSink, create_database, drop_database, migrate
from tests.factories import make_article, make_subscriber

UTC_ = UTC
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)  # ISO week 48; digests go out on Tuesday 08:00
ZONES = {"Asia/Tokyo": 23, "Europe/Paris": 31, "America/New_York": 37}  # due, hours after MONDAY


@pytest.fixture
def weekly(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"digest_weekday": 2, "digest_hour": 8, "digest_lateness_hours": 6}
    )


def _readers(session: Session, *, published: datetime) -> dict[str, int]:
    article = make_article(session, topics=["spine-mri"])
    article.published_at = published
    readers = {
        zone: make_subscriber(session, timezone=zone, topics=("spine-mri",)).id for zone in ZONES
    }
    paused = make_subscriber(session, timezone="Europe/Paris", topics=("spine-mri",))
    paused.digest_paused = True
    make_subscriber(session, timezone="Europe/Paris", topics=("headaches",))  # nothing new
    session.flush()
    return readers


def _planned(session: Session) -> dict[int, str]:
    rows = session.execute(select(Delivery.subscriber_id, Delivery.status)).all()
    return {subscriber_id: str(status) for subscriber_id, status in rows}


def test_local_send_times_follow_each_zone_and_daylight_saving(weekly: Settings) -> None:
    due = {zone: local_send_time(MONDAY.date(), zone, settings=weekly) for zone in ZONES}
    assert {zone: (when - MONDAY).total_seconds() / 3600 for zone, when in due.items()} == {
        zone: float(hours) for zone, hours in ZONES.items()
    }
    # New York leaves daylight saving on Sunday 2026-11-01: 12:00 UTC before, 13:00 after.
    before = local_send_time(datetime(2026, 10, 26).date(), "America/New_York", settings=weekly)
    after = local_send_time(datetime(2026, 11, 2).date(), "America/New_York", settings=weekly)
    assert before.astimezone(UTC).hour == 12 and after.astimezone(UTC).hour == 13


@pytest.mark.parametrize(
    ("monday", "due_hours"),
    [
        (MONDAY, ZONES),
        # Paris left summer time on 2026-10-25, New York only on 2026-11-01.
        (
            datetime(2026, 10, 26, tzinfo=UTC),
            {"Asia/Tokyo": 23, "Europe/Paris": 31, "America/New_York": 36},
        ),
    ],
    ids=["november", "between-the-two-dst-changes"],
)
def test_across_a_week_each_subscriber_is_planned_once_at_their_local_time(
    session: Session,
    weekly: Settings,
    queued: QueuedTasks,
    monday: datetime,
    due_hours: dict[str, int],
) -> None:
    _, end = week_period(monday.date(), settings=weekly)
    readers = _readers(session, published=end - timedelta(days=2))
    planned_at: dict[int, datetime] = {}
    now = monday - timedelta(days=1)
    while now < monday + timedelta(days=7):
        plan_weekly_digest(session, now=now, settings=weekly)
        session.commit()  # the test's savepoint: publishes the queued batches
        for subscriber_id in _planned(session):
            planned_at.setdefault(subscriber_id, now)
        now += timedelta(minutes=30)

    assert set(planned_at) == set(readers.values())  # not the paused one, not the idle one
    for zone, subscriber_id in readers.items():
        due = monday + timedelta(hours=due_hours[zone])
        assert due <= planned_at[subscriber_id] < due + timedelta(minutes=30), zone
    assert set(_planned(session).values()) == {"queued"}
    campaigns = session.scalars(select(Campaign)).all()
    assert len(campaigns) == 1 and campaigns[0].planned
    sent_batches = [args for name, args in queued.names() if name == runner.SEND_BATCH]
    assert sorted(i for _, ids in sent_batches for i in ids) == sorted(  # type: ignore[attr-defined]
        session.scalars(select(Delivery.id))
    )


def test_a_beat_that_was_down_skips_late_digests_and_counts_them(
    session: Session, weekly: Settings
) -> None:
    _, end = week_period(MONDAY.date(), settings=weekly)
    readers = _readers(session, published=end - timedelta(days=1))
    plans = plan_weekly_digest(session, now=MONDAY + timedelta(hours=40), settings=weekly)
    [plan] = [p for p in plans if p.queued or p.skipped_late]
    statuses = _planned(session)
    assert statuses[readers["America/New_York"]] == "queued"  # 3 h late: still fine
    assert statuses[readers["Europe/Paris"]] == DeliveryStatus.SKIPPED_LATE  # 9 h late
    assert statuses[readers["Asia/Tokyo"]] == DeliveryStatus.SKIPPED_LATE  # 17 h late
    assert (plan.queued, plan.skipped_late) == (1, 2)
    progress = runner.campaign_progress(session, plan.campaign_id)  # type: ignore[arg-type]
    assert progress.counts == {"queued": 1, "skipped_late": 2}


def test_nothing_new_this_week_means_no_digest(session: Session, weekly: Settings) -> None:
    _, end = week_period(MONDAY.date(), settings=weekly)
    _readers(session, published=end - timedelta(days=9))  # last week's article
    plan_weekly_digest(session, now=MONDAY + timedelta(hours=38), settings=weekly)
    assert _planned(session) == {}


def test_a_subscriber_without_a_time_zone_gets_the_publishers(
    session: Session, weekly: Settings
) -> None:
    from newsletter.subscribers import service
    from tests.factories import consent_info

    _, end = week_period(MONDAY.date(), settings=weekly)
    make_article(session, topics=["headaches"]).published_at = end - timedelta(hours=3)
    result = service.signup(
        session, email=f"tz-{uuid.uuid4().hex[:6]}@example.org", name="", topic_slugs=["headaches"],
        timezone=weekly.default_timezone, consent=consent_info(), resend_after_seconds=0,
    )  # fmt: skip
    result.subscriber.status = service.SubscriberStatus.ACTIVE
    session.flush()
    due = local_send_time(MONDAY.date(), weekly.default_timezone, settings=weekly)
    plan_weekly_digest(session, now=due - timedelta(minutes=1), settings=weekly)
    assert result.subscriber.id not in _planned(session)
    plan_weekly_digest(session, now=due, settings=weekly)
    assert _planned(session)[result.subscriber.id] == "queued"


@pytest.fixture
def committed(backend: str) -> Iterator[Engine]:
    name = f"newsletter_weekly_{uuid.uuid4().hex[:8]}"
    engine = make_engine(create_database(backend, name))
    migrate(engine)
    yield engine
    engine.dispose()
    drop_database(backend, name)


def test_two_planners_racing_send_each_digest_once(
    committed: Engine, weekly: Settings, smtp_sink: SmtpSink, queued: QueuedTasks
) -> None:
    factory = sessionmaker(committed, expire_on_commit=False)
    weekly = weekly.model_copy(update={"digest_lateness_hours": 24})

    @contextmanager
    def unit() -> Iterator[Session]:
        with factory() as session:
            yield session
            session.commit()

    _, end = week_period(MONDAY.date(), settings=weekly)
    with unit() as session:
        readers = _readers(session, published=end - timedelta(days=1))
        emails = {
            s.email for s in session.scalars(select(runner.Subscriber)) if s.id in readers.values()
        }
    now = MONDAY + timedelta(hours=38)  # every zone is due, none more than 24 h late
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def planner() -> None:
        try:
            start.wait()
            with unit() as session:
                plan_weekly_digest(session, now=now, settings=weekly)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=planner) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []

    with unit() as session:
        [campaign] = session.scalars(select(Campaign)).all()
        ids = list(session.scalars(select(Delivery.id)))
    signer = signer_for(weekly.effective_secret_key, weekly.confirm_token_max_age_seconds)
    for _ in range(2):  # both planners queued batches: run every batch they queued
        runner.send_batch(
            unit, campaign.id, ids, sender=make_sender(weekly, smtp_url=smtp_sink.url),
            settings=weekly, signer=signer, config=runner.RunnerConfig(),
        )  # fmt: skip
    received = Counter(m.to for m in smtp_sink.wait_for(len(emails)))  # type: ignore[attr-defined]
    assert received == Counter(emails)
