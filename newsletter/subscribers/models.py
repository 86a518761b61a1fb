"""Subscribers, their topics, the consent they gave, and the suppression list."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.content.models import Topic
from newsletter.db import Base, UTCDateTime, utcnow


class SubscriberStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"


class SuppressionReason(StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    ERASED = "erased"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


subscriber_topics = Table(
    "subscriber_topics",
    Base.metadata,
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
)


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    # sha256 of the case-folded address: one subscriber per mailbox, and the key
    # the suppression list is joined on (it outlives an erased address).
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    timezone: Mapped[str] = mapped_column(String(64))
    status: Mapped[SubscriberStatus] = mapped_column(String(16), index=True)
    digest_paused: Mapped[bool] = mapped_column(default=False)
    # Regenerated at every signup round, so a confirm link from an earlier round
    # (say, before an unsubscribe) can never re-activate the address.
    confirmation_nonce: Mapped[str] = mapped_column(String(32))
    # When a signup last triggered an email (confirm link or "already subscribed"),
    # so repeated signups cannot be used to flood a mailbox.
    signup_email_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    topics: Mapped[list[Topic]] = relationship(
        secondary=subscriber_topics, order_by=Topic.position, lazy="selectin"
    )
    consents: Mapped[list[Consent]] = relationship(
        back_populates="subscriber",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Consent.id",
    )

    @property
    def topic_slugs(self) -> list[str]:
        return [topic.slug for topic in self.topics]

    def __repr__(self) -> str:
        return f"<Subscriber {self.id} {self.status}>"


class Consent(Base):
    """Proof of consent: when, from where, and to which wording."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(16))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(Text)
    text_version: Mapped[str] = mapped_column(String(32))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    subscriber: Mapped[Subscriber] = relationship(back_populates="consents")


class Suppression(Base):
    """An address that no newsletter send may reach, kept only as a hash."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[SuppressionReason] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
