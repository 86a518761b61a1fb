"""Topics and articles: queries, and the one upsert every source goes through.

The seed topics come with the first migration.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.content.html import first_sentences, html_to_text, markdown_to_html, sanitise_html
from newsletter.content.models import Article, Topic, article_topics
from newsletter.content.schemas import ArticleIn
from newsletter.db import utcnow
from newsletter.errors import DomainError


class ContentError(DomainError):
    """Content the domain refuses."""


class UnknownTopicsError(ContentError):
    def __init__(self, slugs: Sequence[str]) -> None:
        super().__init__("unknown topic(s): " + ", ".join(sorted(slugs)))
        self.slugs = list(slugs)


def list_topics(session: Session) -> Sequence[Topic]:
    """All topics in display order."""
    return session.scalars(select(Topic).order_by(Topic.position, Topic.id)).all()


def topics_by_slugs(session: Session, slugs: Iterable[str]) -> dict[str, Topic]:
    """The topics among `slugs` that exist, keyed by slug."""
    wanted = set(slugs)
    if not wanted:
        return {}
    found = session.scalars(select(Topic).where(Topic.slug.in_(wanted))).all()
    return {topic.slug: topic for topic in found}


def resolve_topics(session: Session, slugs: Sequence[str]) -> list[Topic]:
    """The topics for `slugs`, in the order given; UnknownTopicsError names any missing."""
    found = topics_by_slugs(session, slugs)
    missing = [slug for slug in dict.fromkeys(slugs) if slug not in found]
    if missing:
        raise UnknownTopicsError(missing)
    return [found[slug] for slug in dict.fromkeys(slugs)]


def upsert_article(
    session: Session, data: ArticleIn, *, source: str, now: datetime | None = None
) -> tuple[Article, bool]:
    """Insert or update the article at `data.canonical_url`; returns (article, created).

    Re-ingesting the same URL (a feed polled again, a Markdown file edited)
    updates the row in place, so an article is never listed twice.
    """
    now = now or utcnow()
    topics = resolve_topics(session, data.topics)
    if data.body_markdown is not None:
        body = markdown_to_html(data.body_markdown)
    else:
        body = sanitise_html(data.body_html or "")
    summary = " ".join(data.summary.split()) or first_sentences(html_to_text(body))
    query = select(Article).where(Article.canonical_url == data.canonical_url)
    article = session.scalar(query.with_for_update())
    created = article is None
    if article is None:
        article = Article(canonical_url=data.canonical_url, source=source, created_at=now)
        try:
            with session.begin_nested():
                _fill(article, data, body=body, summary=summary, topics=topics, now=now)
                session.add(article)
        except IntegrityError:
            # The same URL arrived twice at once (two feeds carrying one article).
            article = session.scalar(query.with_for_update())
            if article is None:
                raise
            created = False
    if not created:
        _fill(article, data, body=body, summary=summary, topics=topics, now=now)
        session.flush()
    return article, created


def _fill(
    article: Article,
    data: ArticleIn,
    *,
    body: str,
    summary: str,
    topics: list[Topic],
    now: datetime,
) -> None:
    article.title = data.title
    article.summary = summary
    article.body_html = body
    article.image_url = data.image_url
    article.image_alt = data.image_alt
    article.author = data.author
    article.published_at = data.published_at or article.published_at or now
    article.topics = topics
    article.updated_at = now


def articles_published_between(
    session: Session, start: datetime, end: datetime, *, topic_ids: Iterable[int] | None = None
) -> Sequence[Article]:
    """Articles published in [start, end), newest first, optionally on some topics."""
    query = (
        select(Article)
        .where(Article.published_at >= start, Article.published_at < end)
        .order_by(Article.published_at.desc(), Article.id.desc())
    )
    if topic_ids is not None:
        query = query.where(
            Article.id.in_(
                select(article_topics.c.article_id).where(
                    article_topics.c.topic_id.in_(list(topic_ids))
                )
            )
        )
    return session.scalars(query).all()
