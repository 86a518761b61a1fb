"""Imports every domain's models so `Base.metadata` knows the whole schema."""

from newsletter.campaigns.models import Campaign, Delivery
from newsletter.content.models import Article, Feed, Topic, article_topics, feed_topics
from newsletter.db import Base
from newsletter.staff.models import StaffToken
from newsletter.subscribers.models import Consent, Subscriber, Suppression, subscriber_topics

__all__ = [
    "Article",
    "Base",
    "Campaign",
    "Consent",
    "Delivery",
    "Feed",
    "StaffToken",
    "Subscriber",
    "Suppression",
    "Topic",
    "article_topics",
    "feed_topics",
    "subscriber_topics",
]
