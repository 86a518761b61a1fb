"""Scheduled campaigns: hold a draft until its send_at, then start it like any other."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.campaigns.models import Campaign, CampaignStatus
from newsletter.campaigns.runner import CampaignError, start_campaign
from newsletter.db import rowcount

log = logging.getLogger(__name__)

SCHEDULABLE = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)


def schedule_campaign(
    session: Session, campaign_id: int, *, send_at: datetime | None, now: datetime
) -> CampaignStatus:
    """Hold the campaign until a future `send_at`, or start it now; returns the new status.

    A scheduled campaign may be scheduled again (a new time, or now). The move is
    one guarded UPDATE, so a campaign cancelled meanwhile is refused, not revived.
    """
    if send_at is None or send_at <= now:
        start_campaign(session, campaign_id)
        return CampaignStatus.RUNNING
    moved = rowcount(
        session,
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status.in_(SCHEDULABLE))
        .values(status=CampaignStatus.SCHEDULED, send_at=send_at),
    )
    if not moved:
        status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
        if status is None:
            raise CampaignError(f"no campaign {campaign_id}")
        raise CampaignError(f"cannot schedule campaign {campaign_id}: it is {status}")
    return CampaignStatus.SCHEDULED


def start_due_campaigns(session: Session, now: datetime) -> list[int]:
    """Start every scheduled campaign whose send_at has come; the ids started.

    start_campaign's guarded UPDATE decides: when two beats race, or a campaign is
    cancelled between the SELECT and the start, only one start wins and the rest
    are skipped.
    """
    due = session.scalars(
        select(Campaign.id)
        .where(Campaign.status == CampaignStatus.SCHEDULED, Campaign.send_at <= now)
        .order_by(Campaign.send_at, Campaign.id)
    ).all()
    started = []
    for campaign_id in due:
        try:
            start_campaign(session, campaign_id)
        except CampaignError as e:
            log.info("scheduled campaign not started: %s", e)
            continue
        started.append(campaign_id)
    return started
