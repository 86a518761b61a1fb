"""Races between real connections, on PostgreSQL where they can happen."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import make_engine
from newsletter.subscribers import service
from newsletter.subscribers.models import Subscriber
from tests.conftest import QueuedTasks, create_database, drop_database, migrate
from tests.factories import consent_info, unique_email


@pytest.fixture(scope="module")
def pg_engine() -> Iterator[Engine]:
    """A committed-to PostgreSQL database: each connection sees the others' commits."""
    name = f"newsletter_race_{uuid.uuid4().hex[:8]}"
    engine = make_engine(create_database("postgresql", name))
    migrate(engine)
    yield engine
    engine.dispose()
    drop_database("postgresql", name)


def _signup(session: Session, email: str) -> service.SignupResult:
    return service.signup(
        session,
        email=email,
        name="",
        topic_slugs=["headaches"],
        timezone="UTC",
        consent=consent_info(),
        resend_after_seconds=120,
    )


def _wait_for_a_blocked_backend(engine: Engine, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    query = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
    with engine.connect() as connection:
        while connection.execute(query).scalar_one() == 0:
            assert time.monotonic() < deadline, "the second signup never waited for the first"
            time.sleep(0.01)


def test_simultaneous_signups_of_one_new_address_make_one_subscriber(
    pg_engine: Engine, queued: QueuedTasks
) -> None:
    email = unique_email("double-click")
    factory = sessionmaker(pg_engine, expire_on_commit=False)
    outcomes: list[service.SignupOutcome] = []
    errors: list[BaseException] = []

    def second_click() -> None:
        try:
            with factory() as session:
                outcomes.append(_signup(session, email).outcome)
                session.commit()
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    with factory() as first:
        assert _signup(first, email).outcome is service.SignupOutcome.CREATED
        thread = threading.Thread(target=second_click)
        thread.start()
        _wait_for_a_blocked_backend(pg_engine)  # its INSERT waits on our unique key
        first.commit()
    thread.join(30)

    assert errors == []
    assert outcomes == [service.SignupOutcome.RATE_LIMITED]
    with factory() as session:
        hashed = service.email_hash(email)
        count = session.scalar(
            select(func.count()).select_from(Subscriber).where(Subscriber.email_hash == hashed)
        )
        assert count == 1
        session.execute(delete(Subscriber).where(Subscriber.email_hash == hashed))
        session.commit()
