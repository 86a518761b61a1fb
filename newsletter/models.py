"""Imports every domain's models so `Base.metadata` knows the whole schema."""

from newsletter.content.models import Topic
from newsletter.db import Base
from newsletter.subscribers.models import Consent, Subscriber, Suppression, subscriber_topics

__all__ = ["Base", "Consent", "Subscriber", "Suppression", "Topic", "subscriber_topics"]
