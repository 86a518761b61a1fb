"""Who a campaign goes to, compiled to SQL (never filtered in Python)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, select, true

from newsletter.campaigns.models import Campaign, CampaignKind
from newsletter.content.models import Article, Topic, article_topics
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


def audience_filter(campaign: Campaign) -> ColumnElement[bool]:
    """The campaign's audience as a WHERE clause over `subscribers`."""
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
    slugs = campaign.audience.get("topics")
    if isinstance(slugs, list) and slugs:
        topic_ids = select(Topic.id).where(Topic.slug.in_([str(slug) for slug in slugs]))
        return and_(mailable(), _follows_any(subscriber_topics.c.topic_id.in_(topic_ids)))
    return and_(mailable(), true())
