"""The weekly digest: one campaign per ISO week, sent at each subscriber's local time.

Beat runs `plan_weekly_digest` every few minutes. It finds (or creates, once,
whatever the number of racing planners) the campaign of the current week and
hands the engine the subscribers whose local send time has come: every time
zone is one group, so the selection stays SQL (`timezone IN (...)`), however
many subscribers there are. Rows are inserted with ON CONFLICT DO NOTHING, so a
restarted beat, or two at once, neither doubles nor skips anyone. A zone whose
send time passed more than the allowed lateness ago (the beat was down) gets
'skipped_late' rows: counted, never sent at 3 a.m.

All of a week's subscribers get the same edition: the articles of the seven
days that end at the earliest moment anyone's send time can come (the
configured weekday and hour at UTC+14), so no article is missed or repeated
between weeks, and nobody's digest is assembled before its period is over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import literal, select
from sqlalchemy.orm import Session

from newsletter.campaigns.audience import audience_filter
from newsletter.campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
)
from newsletter.campaigns.runner import SEND_BATCH, finish_if_complete
from newsletter.config import Settings
from newsletter.db import UTCDateTime, dialect_insert, utcnow
from newsletter.queue import enqueue
from newsletter.subscribers.models import Subscriber

EARLIEST_OFFSET = timedelta(hours=14)  # UTC+14 (Kiribati) sees every local time first
LATEST_OFFSET = timedelta(hours=12)  # UTC-12 sees it last


@dataclass
class WeeklyPlan:
    """What one planner run did, for logs and tests."""

    campaign_id: int | None = None
    queued: int = 0
    skipped_late: int = 0
    due_zones: list[str] = field(default_factory=list)
    late_zones: list[str] = field(default_factory=list)


def week_monday(now: datetime) -> date:
    """The Monday of `now`'s ISO week, in UTC."""
    today = now.astimezone(UTC).date()
    return today - timedelta(days=today.weekday())


def local_send_time(monday: date, zone: str, *, settings: Settings) -> datetime:
    """When the week's digest is due in `zone`: the configured weekday and hour there."""
    day = monday + timedelta(days=settings.digest_weekday - 1)
    return datetime.combine(day, time(settings.digest_hour), tzinfo=ZoneInfo(zone))


def week_period(monday: date, *, settings: Settings) -> tuple[datetime, datetime]:
    """[start, end) of the articles the week's digest covers."""
    day = monday + timedelta(days=settings.digest_weekday - 1)
    in_utc = datetime.combine(day, time(settings.digest_hour), tzinfo=ZoneInfo("UTC"))
    end = in_utc - EARLIEST_OFFSET
    return end - timedelta(days=7), end


def _key(monday: date) -> str:
    iso = monday.isocalendar()
    return f"digest:{iso.year}-W{iso.week:02d}"


def _week_campaign(session: Session, monday: date, *, settings: Settings) -> Campaign:
    iso = monday.isocalendar()
    key = _key(monday)
    start, end = week_period(monday, settings=settings)
    session.execute(
        dialect_insert(session, Campaign)
        .values(
            kind=CampaignKind.DIGEST,
            name=f"Weekly digest {iso.year}-W{iso.week:02d}",
            status=CampaignStatus.RUNNING,
            period_start=start,
            period_end=end,
            subject="",
            body_markdown="",
            audience={},
            cursor=0,
            planned=False,
            created_at=utcnow(),
            started_at=utcnow(),
            schedule_key=key,
        )
        .on_conflict_do_nothing(index_elements=["schedule_key"])
    )
    campaign = session.scalar(select(Campaign).where(Campaign.schedule_key == key))
    assert campaign is not None
    return campaign


def _insert_rows(
    session: Session,
    campaign: Campaign,
    zones: Sequence[str],
    status: DeliveryStatus,
) -> list[int]:
    rows = select(
        literal(campaign.id),
        Subscriber.id,
        literal(status.value),
        literal(0),
        literal(utcnow(), UTCDateTime()),
        literal(""),
    ).where(Subscriber.timezone.in_(list(zones)), audience_filter(session, campaign))
    return list(
        session.scalars(
            dialect_insert(session, Delivery)
            .from_select(
                ["campaign_id", "subscriber_id", "status", "attempts", "queued_at", "last_error"],
                rows,
            )
            .on_conflict_do_nothing(index_elements=["campaign_id", "subscriber_id"])
            .returning(Delivery.id)
        )
    )


def plan_weekly_digest(
    session: Session, *, now: datetime, settings: Settings, batch_size: int = 200
) -> list[WeeklyPlan]:
    """Queue the digest for every subscriber whose local send time has come.

    Last week is looked at too: a Sunday-evening send time in UTC-12 falls on
    Monday in UTC, after this week has begun.
    """
    monday = week_monday(now)
    plans = [
        _plan_week(session, week, now=now, settings=settings, batch_size=batch_size)
        for week in (monday - timedelta(days=7), monday)
    ]
    return [plan for plan in plans if plan.campaign_id is not None]


def _plan_week(
    session: Session, monday: date, *, now: datetime, settings: Settings, batch_size: int
) -> WeeklyPlan:
    plan = WeeklyPlan()
    _, end = week_period(monday, settings=settings)
    lateness = timedelta(hours=settings.digest_lateness_hours)
    week_over = end + EARLIEST_OFFSET + LATEST_OFFSET + lateness
    if now < end:
        return plan  # nobody's send time has come yet that week
    existing = session.scalar(select(Campaign).where(Campaign.schedule_key == _key(monday)))
    if existing is None and now >= week_over:
        return plan  # a week that ended while the beat was down: nothing to skip into
    campaign = existing or _week_campaign(session, monday, settings=settings)
    plan.campaign_id = campaign.id
    if campaign.status != CampaignStatus.RUNNING or campaign.planned:
        return plan  # done, or paused or cancelled by staff
    zones = session.scalars(select(Subscriber.timezone).distinct()).all()
    for zone in zones:
        try:
            due = local_send_time(monday, zone, settings=settings)
        except (KeyError, ValueError):
            continue  # not an IANA zone (validated at signup; never expected here)
        if due > now:
            continue
        (plan.late_zones if now - due > lateness else plan.due_zones).append(zone)
    if plan.due_zones:
        ids = sorted(_insert_rows(session, campaign, plan.due_zones, DeliveryStatus.QUEUED))
        plan.queued = len(ids)
        for first in range(0, len(ids), batch_size):
            enqueue(session, SEND_BATCH, campaign.id, ids[first : first + batch_size])
    if plan.late_zones:
        plan.skipped_late = len(
            _insert_rows(session, campaign, plan.late_zones, DeliveryStatus.SKIPPED_LATE)
        )
    if now >= week_over:
        campaign.planned = True
        session.flush()
        finish_if_complete(session, campaign.id)
    return plan
