"""Shared test fixtures: real PostgreSQL and SQLite, real Redis, a real SMTP server.

The core suite runs once per database backend: every test that takes `session`
(or anything built on it) is parametrised over SQLite and PostgreSQL. Each test
runs inside a transaction that is rolled back at the end; application code that
commits only releases a savepoint.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

# Settings are read at import time by the Celery app, so the test environment is
# fixed before anything from `newsletter` is imported.
_RUN_ID = uuid.uuid4().hex[:10]
_TMP = Path(tempfile.mkdtemp(prefix=f"newsletter-tests-{_RUN_ID}-"))
for _name in list(os.environ):
    if _name.startswith("NEWSLETTER_") or _name in {"DATABASE_URL", "REDIS_URL", "SMTP_URL"}:
        del os.environ[_name]
os.environ.update(
    NEWSLETTER_DATA_DIR=str(_TMP / "data"),
    REDIS_URL=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    NEWSLETTER_CELERY_QUEUE=f"newsletter-test-{_RUN_ID}",
    NEWSLETTER_SECRET_KEY="test-secret-key-not-for-production",
    NEWSLETTER_BASE_URL="https://news.example.org",
    NEWSLETTER_DEV_INBOX="true",
)

import psycopg  # noqa: E402
import pytest  # noqa: E402
import redis  # noqa: E402
from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import Engine, make_url  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from newsletter.config import Settings, get_settings  # noqa: E402
from newsletter.db import make_engine  # noqa: E402
from newsletter.delivery.dev_inbox import InboxHandler, start_dev_inbox  # noqa: E402
from newsletter.embedded import PROJECT_ROOT  # noqa: E402
from newsletter.web.app import create_app  # noqa: E402

pytest_plugins = ["tests.browser"]

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _require_services() -> None:
    problems = []
    try:
        redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=3).ping()
    except redis.RedisError as e:
        problems.append(f"Redis at {os.environ['REDIS_URL']}: {e}")
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3, autocommit=True).close()
    except psycopg.Error as e:
        problems.append(f"PostgreSQL at {PG_ADMIN_URL}: {e}")
    if problems:
        pytest.exit(
            "required services are down (start them; .ci/run does):\n" + "\n".join(problems)
        )


def pytest_sessionstart(session: pytest.Session) -> None:
    _require_services()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    client.delete(os.environ["NEWSLETTER_CELERY_QUEUE"])


def create_database(backend: str, name: str) -> str:
    """A new empty database of `backend`; returns its SQLAlchemy URL."""
    if backend == "sqlite":
        return f"sqlite:///{_TMP / f'{name}.db'}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    return str(make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg", database=name)).replace(
        "***", ""
    )


def drop_database(backend: str, name: str) -> None:
    if backend == "postgresql":
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(engine: Engine) -> None:
    """Build the schema the way production does: `alembic upgrade head`."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def engine(backend: str) -> Iterator[Engine]:
    """A migrated database of each backend, shared by the session's tests."""
    name = f"newsletter_test_{_RUN_ID}"
    engine = make_engine(create_database(backend, name))
    migrate(engine)
    yield engine
    engine.dispose()
    drop_database(backend, name)


@pytest.fixture
def session_factory(engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions joined to one outer transaction that the test rolls back."""
    connection = engine.connect()
    transaction = connection.begin()
    factory = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield factory
    transaction.rollback()
    connection.close()


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as session:
        yield session


@pytest.fixture
def settings() -> Settings:
    return get_settings()


@pytest.fixture
def client(settings: Settings, session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    """The web app, sharing the test's rolled-back transaction."""
    with TestClient(create_app(settings, session_factory), follow_redirects=False) as client:
        yield client


class SmtpSink:
    """A real SMTP server on loopback (the dev inbox) and what it received."""

    def __init__(self, folder: Path, port: int, handler: InboxHandler) -> None:
        self.folder = folder
        self.port = port
        self.handler = handler

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[object]:
        messages = self.handler.wait_for(count, timeout)
        assert len(messages) >= count, f"expected {count} messages, got {len(messages)}"
        return list(messages)


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    port = free_port()
    controller = start_dev_inbox(tmp_path / "inbox", host="127.0.0.1", port=port)
    yield SmtpSink(tmp_path / "inbox", port, controller.handler)
    controller.stop()


@pytest.fixture
def queued(settings: Settings) -> Iterator[QueuedTasks]:
    """The Celery tasks this test published to the (real) Redis queue."""
    tasks = QueuedTasks(settings)
    tasks.clear()
    yield tasks
    tasks.clear()


class QueuedTasks:
    def __init__(self, settings: Settings) -> None:
        self._redis = redis.Redis.from_url(settings.effective_redis_url)
        self._queue = settings.celery_queue

    def clear(self) -> None:
        self._redis.delete(self._queue)

    def names(self) -> list[tuple[str, list[object]]]:
        """(task name, args) of every message waiting in the queue, oldest first."""
        import base64
        import json

        found = []
        for raw in reversed(self._redis.lrange(self._queue, 0, -1)):
            envelope = json.loads(raw)
            body = json.loads(base64.b64decode(envelope["body"]))
            found.append((envelope["headers"]["task"], body[0]))
        return found


class Cli:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "newsletter.cli", *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if ok:
            assert result.returncode == 0, result.stdout + result.stderr
        return result


@pytest.fixture
def cli(backend: str, tmp_path: Path) -> Iterator[Cli]:
    name = f"newsletter_cli_{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, NEWSLETTER_DATA_DIR=str(tmp_path / "data"))
    if backend == "postgresql":
        env["DATABASE_URL"] = create_database(backend, name)
    run = Cli(env)
    run("db", "upgrade")
    yield run
    drop_database(backend, name)
