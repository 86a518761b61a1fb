"""Topic queries (the seed topics come with the first migration)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.content.models import Topic


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
