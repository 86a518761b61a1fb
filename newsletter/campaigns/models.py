"""Campaigns and the delivery ledger: one row per (campaign, subscriber), before any send."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.db import Base, UTCDateTime, utcnow


class CampaignKind(StrEnum):
    DIGEST = "digest"
    BROADCAST = "broadcast"


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    BOUNCED = "bounced"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"
    # A scheduled digest whose local send time had passed by more than the
    # allowed lateness when it was planned (the beat was down): counted, not sent.
    SKIPPED_LATE = "skipped_late"


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[CampaignKind] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[CampaignStatus] = mapped_column(String(16), index=True)
    # A digest covers [period_start, period_end); a broadcast has a subject and body.
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    subject: Mapped[str] = mapped_column(String(300), default="")
    body_markdown: Mapped[str] = mapped_column(Text, default="")
    # Who receives it, as plain JSON the runner compiles to SQL (topic slugs for now).
    audience: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # "digest:2026-W48" for the scheduled weekly digest: one campaign per period,
    # however many planners race to create it.
    schedule_key: Mapped[str | None] = mapped_column(String(32), unique=True)
    # Keyset cursor of the audience walk: the last subscriber id whose Delivery row
    # is committed. It moves when a chunk is planned, never when it is fetched.
    cursor: Mapped[int] = mapped_column(default=0)
    planned: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Delivery(Base):
    """The ledger: what happened to one campaign message for one subscriber."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("campaign_id", "subscriber_id"),
        Index("ix_deliveries_campaign_status", "campaign_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    # No foreign key: an erased subscriber's ledger rows stay, so the counts do.
    subscriber_id: Mapped[int] = mapped_column(index=True)
    status: Mapped[DeliveryStatus] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    # When the row was (re)queued: a queued row older than the sweeper's limit
    # lost its task (a crash between commit and publish) and is queued again.
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str] = mapped_column(String(300), default="")
