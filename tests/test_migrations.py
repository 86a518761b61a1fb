"""The migrations build the schema the models describe, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from newsletter.content.models import Topic
from newsletter.models import Base


def test_models_and_migrations_agree(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_first_migration_seeds_the_topics(session: Session) -> None:
    slugs = session.scalars(select(Topic.slug).order_by(Topic.position)).all()
    assert slugs[:3] == ["spine-mri", "sciatica-back-pain", "headaches"]
    assert len(slugs) >= 4
