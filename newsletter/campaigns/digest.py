"""The weekly digest: which articles a subscriber gets, rendered once per variant.

A digest edition covers one period. Subscribers who follow the same topics
that have new articles receive the same variant, so a campaign of 10,000
readers over five topics renders and inlines at most a few dozen variants;
each reader's message is that variant with their name and links filled in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.content.models import Article, Topic
from newsletter.content.service import articles_published_between, list_topics
from newsletter.delivery.mime import MessageTemplate, OutgoingMessage
from newsletter.errors import DomainError
from newsletter.rendering.cache import RenderCache
from newsletter.rendering.campaigns import DigestSection, campaign_template, render_digest
from newsletter.rendering.personal import Recipient, list_unsubscribe, personal_values
from newsletter.subscribers.models import Subscriber
from newsletter.subscribers.service import get_subscriber_by_email
from newsletter.subscribers.tokens import TokenSigner

VariantKey = frozenset[int]


@dataclass
class DigestEdition:
    """The articles of one period by topic, and the variants rendered so far."""

    start: datetime
    end: datetime
    topics: Sequence[Topic]
    articles_by_topic: dict[int, list[Article]]
    settings: Settings
    campaign_id: str = "digest"
    variants: dict[VariantKey, MessageTemplate] = field(default_factory=dict)
    # Shared between worker processes; its keys start with `cache_key`, which
    # must name this campaign uniquely.
    render_cache: RenderCache | None = None
    cache_key: str = ""

    def variant_key(self, topic_ids: Sequence[int]) -> VariantKey:
        """The topics among `topic_ids` that have new articles: the variant's identity."""
        return frozenset(tid for tid in topic_ids if self.articles_by_topic.get(tid))

    def template_for(self, key: VariantKey) -> MessageTemplate:
        """The variant's encoded message, rendered and CSS-inlined on first use only."""
        template = self.variants.get(key)
        if template is None:
            template = self._render(key)
            self.variants[key] = template
        return template

    def _render(self, key: VariantKey) -> MessageTemplate:
        sections = [
            DigestSection(topic, self._articles_not_seen_before(topic, key))
            for topic in self.topics
            if topic.id in key
        ]
        shared_key = f"{self.cache_key}:{','.join(map(str, sorted(key)))}"
        rendered = self.render_cache.get(shared_key) if self.render_cache else None
        if rendered is None:
            rendered = render_digest(
                [section for section in sections if section.articles],
                settings=self.settings,
                period_label=self.period_label,
            )
            if self.render_cache is not None:
                self.render_cache.put(shared_key, rendered)
        return campaign_template(
            rendered,
            settings=self.settings,
            list_name="weekly digest",
            list_id="digest",
            feedback_id=f"{self.campaign_id}:digest",
        )

    def _articles_not_seen_before(self, topic: Topic, key: VariantKey) -> list[Article]:
        # An article filed under two followed topics is shown once, in the first.
        earlier = [t.id for t in self.topics if t.id in key and t.position < topic.position]
        shown = {a.id for tid in earlier for a in self.articles_by_topic.get(tid, [])}
        return [a for a in self.articles_by_topic.get(topic.id, []) if a.id not in shown]

    @property
    def period_label(self) -> str:
        return f"between {self.start:%B %-d} and {self.end - timedelta(seconds=1):%B %-d}"

    def message_for(self, subscriber: Recipient, *, signer: TokenSigner) -> OutgoingMessage | None:
        """The subscriber's digest, or None when none of their topics has new articles."""
        key = self.variant_key(subscriber.topic_ids)
        if not key:
            return None
        values = personal_values(
            subscriber.id,
            subscriber.name,
            base_url=self.settings.effective_base_url,
            signer=signer,
        )
        return self.template_for(key).render(
            to_address=subscriber.email,
            fields=values,
            list_unsubscribe=list_unsubscribe(
                values["unsubscribe_url"], mailto=self.settings.unsubscribe_mailto
            ),
        )


def load_edition(
    session: Session, *, start: datetime, end: datetime, settings: Settings
) -> DigestEdition:
    """The digest edition for [start, end): every article of the period, by topic."""
    topics = list_topics(session)
    articles_by_topic: dict[int, list[Article]] = {topic.id: [] for topic in topics}
    for article in articles_published_between(session, start, end):
        for topic in article.topics:
            articles_by_topic[topic.id].append(article)
    return DigestEdition(
        start=start,
        end=end,
        topics=topics,
        articles_by_topic=articles_by_topic,
        settings=settings,
        campaign_id=f"digest-{start:%Y%m%d}",
    )


def last_week(now: datetime) -> tuple[datetime, datetime]:
    """The seven days up to `now`: what a preview of "this week's digest" covers."""
    return now - timedelta(days=7), now


def recipient_of(subscriber: Subscriber) -> Recipient:
    """A loaded subscriber as the campaign code sees it."""
    return Recipient(
        id=subscriber.id,
        email=subscriber.email,
        name=subscriber.name,
        topic_ids=tuple(topic.id for topic in subscriber.topics),
    )


class DigestPreviewError(DomainError):
    """There is nothing to preview for this address; the message says why."""


def preview_digest(
    session: Session, email: str, *, now: datetime, settings: Settings, signer: TokenSigner
) -> OutgoingMessage:
    """Exactly the message `email` would receive for the week up to `now`."""
    subscriber = get_subscriber_by_email(session, email)
    if subscriber is None:
        raise DigestPreviewError(f"no subscriber with address {email}")
    start, end = last_week(now)
    message = load_edition(session, start=start, end=end, settings=settings).message_for(
        recipient_of(subscriber), signer=signer
    )
    if message is None:
        topics = ", ".join(subscriber.topic_slugs) or "no topics"
        raise DigestPreviewError(f"no new articles this week on {email}'s topics ({topics})")
    return message
