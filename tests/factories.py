"""Factories for rows the tests need, with sensible defaults."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Sequence

from sqlalchemy.orm import Session

from newsletter.content.models import Article
from newsletter.content.service import topics_by_slugs
from newsletter.db import utcnow
from newsletter.subscribers.models import Consent, Subscriber, SubscriberStatus
from newsletter.subscribers.service import ConsentInfo, email_hash

_counter = itertools.count(1)


def unique_email(prefix: str = "reader") -> str:
    return f"{prefix}{next(_counter)}-{secrets.token_hex(3)}@example.org"


def consent_info(source: str = "api") -> ConsentInfo:
    return ConsentInfo(
        source=source, text_version="test-1", ip_address="192.0.2.10", user_agent="pytest"
    )


def make_subscriber(
    session: Session,
    *,
    email: str | None = None,
    name: str = "Ada",
    status: SubscriberStatus = SubscriberStatus.ACTIVE,
    topics: Sequence[str] = ("spine-mri",),
    timezone: str = "Europe/Paris",
) -> Subscriber:
    """A subscriber with a consent record, flushed so it has an id."""
    email = email or unique_email()
    now = utcnow()
    found = topics_by_slugs(session, topics)
    subscriber = Subscriber(
        email=email,
        email_hash=email_hash(email),
        name=name,
        timezone=timezone,
        status=status,
        confirmation_nonce=secrets.token_hex(8),
        created_at=now,
        confirmed_at=now if status == SubscriberStatus.ACTIVE else None,
        topics=[found[slug] for slug in topics],
    )
    session.add(subscriber)
    session.add(
        Consent(subscriber=subscriber, source="test", text_version="test-1", accepted_at=now)
    )
    session.flush()
    return subscriber


def make_staff_token(session: Session, name: str = "editor") -> str:
    """A live staff token's plain value."""
    from newsletter.staff.service import create_staff_token

    _, plain = create_staff_token(session, name=name)
    session.flush()
    return plain


def article_payload(**overrides: object) -> dict[str, object]:
    """A valid `POST /api/v1/articles` body."""
    payload: dict[str, object] = {
        "title": "What a lumbar MRI can show",
        "canonical_url": f"https://health.example.org/articles/{secrets.token_hex(4)}",
        "summary": "The lower spine has five vertebrae; an MRI shows their discs and nerves.",
        "body_markdown": "An MRI of the **lumbar spine** looks at the lowest five vertebrae.",
        "image_url": "https://health.example.org/img/lumbar.jpg",
        "image_alt": "Sagittal MRI slice of a lumbar spine",
        "author": "Dr. Lena Ortiz",
        "published_at": "2026-11-20T09:00:00Z",
        "topics": ["spine-mri", "sciatica-back-pain"],
    }
    payload.update(overrides)
    return payload


def make_article(
    session: Session,
    *,
    title: str = "How a doctor reads a spine MRI",
    topics: Sequence[str] = ("spine-mri",),
    days_ago: float = 2,
    image: bool = True,
    summary: str = "Your spine has cervical, thoracic and lumbar segments; an MRI shows each.",
) -> Article:
    """A published article `days_ago` days old."""
    from datetime import timedelta

    from newsletter.content.schemas import ArticleIn
    from newsletter.content.service import upsert_article

    slug = secrets.token_hex(4)
    data = ArticleIn(
        title=title,
        canonical_url=f"https://health.example.org/articles/{slug}",
        summary=summary,
        body_markdown=f"{summary}\n\nMore about *{title}*.",
        image_url=f"https://health.example.org/img/{slug}.jpg" if image else None,
        image_alt=f"Illustration for {title}" if image else "",
        author="Dr. Lena Ortiz",
        published_at=utcnow() - timedelta(days=days_ago),
        topics=list(topics),
    )
    article, _ = upsert_article(session, data, source="api")
    return article
