"""Who a campaign goes to, compiled to SQL (never filtered in Python)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy.orm import Session

from newsletter.campaigns.models import Campaign, CampaignKind
from newsletter.content.models import Article, article_topics

if TYPE_CHECKING:
    from newsletter.campaigns.segments import SegmentIn
from newsletter.subscribers.models import (
    Subscriber,
    SubscriberStatus,
    Suppression,
    subscriber_topics,
)


def mailable() -> ColumnElement[bool]:
    """Active and not on the suppression list: checked at planning and again at claim."""
    return and_(
        Subscriber.status == SubscriberStatus.ACTIVE,
        ~exists().where(Suppression.email_hash == Subscriber.email_hash),
    )


def _follows_any(topic_ids: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(subscriber_topics.c.subscriber_id == Subscriber.id, topic_ids)


def segment_of(audience: dict[str, object]) -> SegmentIn:
    """A campaign's stored audience as a segment (`{"topics": [...]}` means topics_any)."""
    from newsletter.campaigns.segments import SegmentIn  # segments builds on mailable()

    if set(audience) <= {"topics"}:
        topics = audience.get("topics")
        return SegmentIn(topics_any=[str(t) for t in topics] if isinstance(topics, list) else [])
    return SegmentIn.model_validate(audience)


def audience_filter(session: Session, campaign: Campaign) -> ColumnElement[bool]:
    """The campaign's audience as a WHERE clause over `subscribers`.

    Whatever the segment says, a campaign only ever goes to mailable subscribers.
    """
    if campaign.kind == CampaignKind.DIGEST:
        assert campaign.period_start is not None and campaign.period_end is not None
        topics_with_news = (
            select(article_topics.c.topic_id)
            .join(Article, Article.id == article_topics.c.article_id)
            .where(
                Article.published_at >= campaign.period_start,
                Article.published_at < campaign.period_end,
            )
        )
        return and_(
            mailable(),
            Subscriber.digest_paused.is_(False),
            _follows_any(subscriber_topics.c.topic_id.in_(topics_with_news)),
        )
    from newsletter.campaigns.segments import segment_filter

    return and_(mailable(), segment_filter(session, segment_of(campaign.audience)))
