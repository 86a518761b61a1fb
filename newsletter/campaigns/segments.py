"""Audience segments: a staff-built filter over subscribers, compiled to one WHERE clause.

A segment is plain JSON (it is stored in `Campaign.audience` and sent by the staff
API), checked once by `SegmentIn` and turned into SQL by `segment_filter`; nothing
is ever filtered in Python, so a segment of a million subscribers costs one query.

The suppression rule: a segment whose statuses are exactly ``["active"]`` (the
default, and the only kind a campaign may be sent to) is combined with `mailable()`,
so a suppressed address is excluded even while its subscriber row is still active.
Segments that include pending or unsubscribed subscribers are for previews and
exports; they match on status alone, and the runner's own `mailable()` check at
claim time still keeps them from receiving mail.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from sqlalchemy import ColumnElement, and_, exists, func, literal, select
from sqlalchemy.orm import Session

from newsletter.campaigns.audience import mailable
from newsletter.content.models import Topic
from newsletter.content.service import resolve_topics
from newsletter.subscribers.models import Subscriber, subscriber_topics
from newsletter.subscribers.schemas import TimeZone, TopicSlug

MAX_ITEMS = 50

SegmentStatus = Literal["active", "pending", "unsubscribed"]

_DOMAIN_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*")
# The LIKE escape character; `/` is not special to LIKE on either backend.
_ESCAPE = "/"


def _needle(value: str) -> str:
    # Names are stored NFC-normalised (subscribers.schemas), so the needle must be too.
    value = unicodedata.normalize("NFC", value)
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in value):
        raise ValueError("must not contain line breaks or control characters")
    return value


def _domain(value: str) -> str:
    value = value.strip().lower().removeprefix("@")
    if not value.isascii():
        raise ValueError("use the domain's ASCII (punycode) form, e.g. 'xn--mnchen-3ya.de'")
    if len(value) > 253 or not _DOMAIN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a domain name; give the part after @, e.g. 'example.org'"
        )
    return value


def _active_only() -> list[SegmentStatus]:
    return ["active"]


NameNeedle = Annotated[
    str, StringConstraints(min_length=1, max_length=100), AfterValidator(_needle)
]
EmailDomain = Annotated[
    str, StringConstraints(min_length=1, max_length=254), AfterValidator(_domain)
]


class SegmentIn(BaseModel):
    """Who a campaign goes to; every condition given must hold (they are ANDed)."""

    model_config = ConfigDict(extra="forbid")

    # Follows at least one of these topics.
    topics_any: list[TopicSlug] = Field(default_factory=list, max_length=MAX_ITEMS)
    # Follows every one of these topics.
    topics_all: list[TopicSlug] = Field(default_factory=list, max_length=MAX_ITEMS)
    statuses: list[SegmentStatus] = Field(
        default_factory=_active_only, min_length=1, max_length=MAX_ITEMS
    )
    # Signed up in [signed_up_after, signed_up_before), on Subscriber.created_at.
    signed_up_after: AwareDatetime | None = None
    signed_up_before: AwareDatetime | None = None
    timezones: list[TimeZone] = Field(default_factory=list, max_length=MAX_ITEMS)
    digest_paused: bool | None = None
    name_contains: NameNeedle | None = None
    email_domain: EmailDomain | None = None

    @field_validator("topics_any", "topics_all", "statuses", "timezones")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(values))

    @model_validator(mode="after")
    def _check_range(self) -> SegmentIn:
        after, before = self.signed_up_after, self.signed_up_before
        if after is not None and before is not None and after >= before:
            raise ValueError("signed_up_after must be before signed_up_before")
        return self

    @property
    def only_active(self) -> bool:
        """Whether the segment selects active subscribers only (the sendable kind)."""
        return set(self.statuses) == {"active"}


def _follows(topic_condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(subscriber_topics.c.subscriber_id == Subscriber.id, topic_condition)


def _like_escape(value: str) -> str:
    return (
        value.replace(_ESCAPE, _ESCAPE * 2).replace("%", _ESCAPE + "%").replace("_", _ESCAPE + "_")
    )


def segment_filter(session: Session, segment: SegmentIn) -> ColumnElement[bool]:
    """The segment as one WHERE clause over `subscribers`; UnknownTopicsError for bad slugs.

    Only the topics are read here (to check the slugs and get their ids); the
    subscribers are left to the database.
    """
    clauses: list[ColumnElement[bool]] = [
        mailable() if segment.only_active else Subscriber.status.in_(segment.statuses)
    ]

    # One lookup for both lists, so the error names every unknown slug at once.
    topic_ids = {
        topic.slug: topic.id
        for topic in resolve_topics(session, [*segment.topics_any, *segment.topics_all])
    }
    if segment.topics_any:
        wanted = [topic_ids[slug] for slug in segment.topics_any]
        clauses.append(_follows(subscriber_topics.c.topic_id.in_(wanted)))
    # One EXISTS per topic: each is an index probe on the (subscriber_id, topic_id)
    # primary key, where a GROUP BY ... HAVING count would scan every link row.
    clauses.extend(
        _follows(subscriber_topics.c.topic_id == topic_ids[slug]) for slug in segment.topics_all
    )

    if segment.signed_up_after is not None:
        clauses.append(Subscriber.created_at >= segment.signed_up_after)
    if segment.signed_up_before is not None:
        clauses.append(Subscriber.created_at < segment.signed_up_before)
    if segment.timezones:
        clauses.append(Subscriber.timezone.in_(segment.timezones))
    if segment.digest_paused is not None:
        clauses.append(Subscriber.digest_paused.is_(segment.digest_paused))
    if segment.name_contains is not None:
        # lower() on both sides, in SQL, so the column and the needle fold alike on
        # each backend: PostgreSQL folds all of Unicode, SQLite only ASCII (there an
        # 'é' does not match 'É', but a needle typed as stored always matches).
        needle = func.lower(literal(_like_escape(segment.name_contains)))
        clauses.append(func.lower(Subscriber.name).contains(needle, escape=_ESCAPE))
    if segment.email_domain is not None:
        # Addresses are stored ASCII (IDN domains as punycode) and the domain is
        # validated ASCII and lowercased, so Python's lower() matches SQL's here.
        clauses.append(
            func.lower(Subscriber.email).endswith("@" + segment.email_domain, autoescape=True)
        )
    return and_(*clauses)


@dataclass(frozen=True)
class SegmentPreview:
    """How many subscribers a segment selects, and the first few of them."""

    count: int
    sample: list[dict[str, str]]


def preview_segment(
    session: Session, segment: SegmentIn, *, sample_size: int = 10
) -> SegmentPreview:
    """Count the segment and list up to `sample_size` of its subscribers, by id; sends nothing."""
    if sample_size < 0:
        raise ValueError("sample_size must not be negative")
    where = segment_filter(session, segment)
    count = session.scalar(select(func.count()).select_from(Subscriber).where(where)) or 0
    rows = session.execute(
        select(
            Subscriber.id,
            Subscriber.email,
            Subscriber.name,
            Subscriber.status,
            Subscriber.timezone,
        )
        .where(where)
        .order_by(Subscriber.id)
        .limit(sample_size)
    ).all()
    slugs: dict[int, list[str]] = {row.id: [] for row in rows}
    if slugs:
        links = session.execute(
            select(subscriber_topics.c.subscriber_id, Topic.slug)
            .join(Topic, Topic.id == subscriber_topics.c.topic_id)
            .where(subscriber_topics.c.subscriber_id.in_(list(slugs)))
            .order_by(Topic.position, Topic.id)
        ).all()
        for subscriber_id, slug in links:
            slugs[subscriber_id].append(slug)
    sample = [
        {
            "email": row.email,
            "name": row.name,
            "status": str(row.status),
            "timezone": row.timezone,
            "topics": ",".join(slugs[row.id]),
        }
        for row in rows
    ]
    return SegmentPreview(count=count, sample=sample)
