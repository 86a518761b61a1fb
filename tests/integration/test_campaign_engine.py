"""The campaign engine through real processes: a Celery worker we kill, Redis, SMTP, DB.

Each test starts its own worker on the test run's queue, sends a digest to a
few hundred subscribers through an SMTP server that takes a few milliseconds
per message (so there is time to act mid-send), and asserts on what the
server actually received.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.campaigns import runner
from newsletter.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from newsletter.config import get_settings
from newsletter.db import make_engine, utcnow
from newsletter.delivery.dev_inbox import InboxHandler, list_messages
from newsletter.delivery.mime import OutgoingMessage
from newsletter.embedded import PROJECT_ROOT
from newsletter.subscribers import service as subscribers
from newsletter.subscribers.models import Subscriber
from newsletter.subscribers.tokens import signer_for
from tests.conftest import create_database, drop_database, free_port, migrate
from tests.factories import consent_info, make_article

AUDIENCE = 240
DEADLINE = 120.0


class SlowInbox(InboxHandler):
    """The dev inbox, taking `delay` seconds per message like a busy relay."""

    def __init__(self, folder: Path, delay: float) -> None:
        super().__init__(folder)
        self.delay = delay

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


class FaultyInbox(SlowInbox):
    """A relay with moods, by address: bounce* gets 550 at RCPT, busy* a 451 the
    first time, and drop* has its connection cut at DATA the first time."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, delay=0.002)
        self.refused: Counter[str] = Counter()

    async def handle_RCPT(  # noqa: N802  (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("bounce"):
            self.refused[address] += 1
            return "550 5.1.1 No such user here"
        if address.startswith("busy") and not self.refused[address]:
            self.refused[address] += 1
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        address = envelope.rcpt_tos[0]
        if address.startswith("drop") and not self.refused[address]:
            self.refused[address] += 1
            server.transport.close()
            return "421 4.4.2 Connection dropped"
        return await super().handle_DATA(server, session, envelope)


class Engine_:  # noqa: N801  (a bag of the test's moving parts)
    def __init__(self, backend: str, folder: Path, *, faulty: bool = False) -> None:
        self.name = f"newsletter_engine_{uuid.uuid4().hex[:8]}"
        self.backend = backend
        self.url = create_database(backend, self.name)
        self.engine: Engine = make_engine(self.url)
        migrate(self.engine)
        self.factory = sessionmaker(self.engine, expire_on_commit=False)
        self.inbox: SlowInbox = (
            FaultyInbox(folder / "inbox") if faulty else SlowInbox(folder / "inbox", delay=0.01)
        )
        self.smtp_port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.smtp_port)
        self.controller.start()
        self.queue = os.environ["NEWSLETTER_CELERY_QUEUE"]
        self.env = dict(
            os.environ,
            DATABASE_URL=self.url,
            SMTP_URL=f"smtp://127.0.0.1:{self.smtp_port}",
            NEWSLETTER_CAMPAIGN_BATCH_SIZE="40",
            NEWSLETTER_CAMPAIGN_RETRY_BASE_SECONDS="0.5",
        )
        self.log = folder / "worker.log"
        self.workers: list[subprocess.Popen[bytes]] = []
        redis.Redis.from_url(os.environ["REDIS_URL"]).delete(self.queue)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.factory() as session:
            yield session
            session.commit()

    def start_worker(self) -> subprocess.Popen[bytes]:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", "worker", "--loglevel", "INFO",
             "--concurrency", "1", "--queues", self.queue, "--without-mingle",
             "--without-gossip", "--without-heartbeat"],
            cwd=PROJECT_ROOT, env=self.env, stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.workers.append(worker)
        return worker

    def kill_worker(self, worker: subprocess.Popen[bytes]) -> None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(30)

    def close(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(worker.pid, signal.SIGKILL)
        self.controller.stop()
        self.engine.dispose()
        drop_database(self.backend, self.name)

    def received(self) -> list[tuple[str, datetime]]:
        return [(m.to, m.received_at) for m in list_messages(self.inbox.folder)]

    def wait_for_messages(self, count: int) -> None:
        messages = self.inbox.wait_until(lambda found: len(found) >= count, timeout=DEADLINE)
        assert len(messages) >= count, self.log.read_text()[-3000:]

    def wait_until(self, condition: Callable[[Session], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while True:
            with self.session() as session:
                if condition(session):
                    return
            assert time.monotonic() < deadline, (
                f"timed out waiting for {what}\n" + (self.log.read_text()[-3000:])
            )
            time.sleep(0.1)

    def campaign_status(self, session: Session, campaign_id: int) -> str:
        return str(session.scalar(select(Campaign.status).where(Campaign.id == campaign_id)))

    def count(self, session: Session, campaign_id: int, status: DeliveryStatus) -> int:
        return (
            session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.campaign_id == campaign_id, Delivery.status == status)
            )
            or 0
        )


@pytest.fixture
def engine(backend: str, tmp_path: Path) -> Iterator[Engine_]:
    parts = Engine_(backend, tmp_path)
    try:
        yield parts
    finally:
        parts.close()


@pytest.fixture
def faulty_engine(backend: str, tmp_path: Path) -> Iterator[Engine_]:
    parts = Engine_(backend, tmp_path, faulty=True)
    try:
        yield parts
    finally:
        parts.close()


def _audience(parts: Engine_, size: int = AUDIENCE, *, extra: Sequence[str] = ()) -> list[str]:
    emails = [f"reader{i:04d}-{uuid.uuid4().hex[:4]}@example.org" for i in range(size)]
    emails += list(extra)
    with parts.session() as session:
        make_article(session, topics=["spine-mri"])
        for email in emails:
            subscribers.add_confirmed_subscriber(
                session,
                email=email,
                name="Reader",
                topic_slugs=["spine-mri"],
                timezone="UTC",
                consent=consent_info("import"),
            )
    return emails


def _start_digest(parts: Engine_) -> int:
    now = utcnow()
    with parts.session() as session:
        campaign = runner.create_digest_campaign(session, start=now - timedelta(days=7), end=now)
        runner.start_campaign(session, campaign.id)
        return campaign.id


def _cli(parts: Engine_, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "newsletter.cli", *args],
        cwd=PROJECT_ROOT, env=parts.env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_killed_worker_loses_nothing_and_repeats_only_what_was_in_flight(
    engine: Engine_,
) -> None:
    emails = _audience(engine)
    worker = engine.start_worker()
    campaign_id = _start_digest(engine)
    engine.wait_for_messages(60)

    engine.kill_worker(worker)
    with engine.session() as session:
        in_flight = engine.count(session, campaign_id, DeliveryStatus.SENDING)
        recovered = runner.recover_stale_deliveries(
            session, older_than=timedelta(0), config=runner.RunnerConfig(batch_size=40)
        )
    assert in_flight > 0 and recovered >= in_flight

    engine.start_worker()
    engine.wait_until(
        lambda s: engine.campaign_status(s, campaign_id) == CampaignStatus.DONE, "the campaign"
    )
    received = Counter(to for to, _ in engine.received())
    assert set(received) == set(emails)  # nothing lost
    duplicates = sum(received.values()) - len(emails)
    assert duplicates <= in_flight, (duplicates, in_flight)
    with engine.session() as session:
        assert engine.count(session, campaign_id, DeliveryStatus.SENT) == len(emails)


def test_an_unsubscribe_mid_campaign_stops_every_later_message(engine: Engine_) -> None:
    emails = _audience(engine)
    engine.start_worker()
    campaign_id = _start_digest(engine)
    engine.wait_for_messages(30)

    leaving = set(emails[-100:])
    with engine.session() as session:
        for subscriber in session.scalars(select(Subscriber).where(Subscriber.email.in_(leaving))):
            subscribers.unsubscribe(session, subscriber.id)
    committed = datetime.now(UTC)

    engine.wait_until(
        lambda s: engine.campaign_status(s, campaign_id) == CampaignStatus.DONE, "the campaign"
    )
    late = [
        (to, at)
        for to, at in engine.received()
        if to in leaving and at > committed + timedelta(seconds=1)
    ]
    assert late == []
    with engine.session() as session:
        stopped = engine.count(session, campaign_id, DeliveryStatus.SUPPRESSED)
    assert stopped > 0
    assert len({to for to, _ in engine.received()} & leaving) == 100 - stopped


def test_pause_and_resume_from_the_cli_mid_send(engine: Engine_) -> None:
    # Large enough that the CLI (about 1.5 s to start) pauses well before the end;
    # the batch in flight at the pause may finish, the ones after it may not start.
    emails = _audience(engine, size=600)
    engine.start_worker()
    campaign_id = _start_digest(engine)
    engine.wait_for_messages(30)

    assert "pause done" in _cli(engine, "campaigns", "pause", str(campaign_id))
    engine.wait_until(
        lambda s: engine.count(s, campaign_id, DeliveryStatus.SENDING) == 0, "the batch to stop"
    )
    with engine.session() as session:
        sent_at_pause = engine.count(session, campaign_id, DeliveryStatus.SENT)
    assert 30 <= sent_at_pause < len(emails)
    assert len(engine.received()) == sent_at_pause
    assert "paused" in _cli(engine, "campaigns", "show", str(campaign_id))

    assert "resume done" in _cli(engine, "campaigns", "resume", str(campaign_id))
    engine.wait_until(
        lambda s: engine.campaign_status(s, campaign_id) == CampaignStatus.DONE, "the campaign"
    )
    received = Counter(to for to, _ in engine.received())
    assert received == Counter(emails)  # each exactly once


def test_the_same_batch_run_twice_at_once_sends_each_message_once(engine: Engine_) -> None:
    emails = _audience(engine, size=60)
    now = utcnow()
    with engine.session() as session:
        campaign = runner.create_digest_campaign(session, start=now - timedelta(days=7), end=now)
        campaign.status = CampaignStatus.RUNNING
        campaign_id = campaign.id
    runner.plan_campaign(engine.session, campaign_id, config=runner.RunnerConfig())
    with engine.session() as session:
        ids = list(session.scalars(select(Delivery.id).where(Delivery.campaign_id == campaign_id)))

    settings = get_settings()
    signer = signer_for(settings.effective_secret_key, settings.confirm_token_max_age_seconds)
    handed: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(2)

    class Recorder:
        def send(self, message: OutgoingMessage) -> None:
            with lock:
                handed.append(message.rcpt_to)

        def close(self) -> None:
            pass

    def run() -> None:
        start.wait()
        runner.send_batch(
            engine.session, campaign_id, ids, sender=Recorder(), settings=settings,
            signer=signer, config=runner.RunnerConfig(),
        )  # fmt: skip

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert Counter(handed) == Counter(emails)


def test_a_relay_that_bounces_greylists_and_drops_gets_each_message_right(
    faulty_engine: Engine_,
) -> None:
    troubled = ["bounce@example.org", "busy@example.org", "drop@example.org"]
    emails = _audience(faulty_engine, size=30, extra=troubled)
    faulty_engine.start_worker()
    campaign_id = _start_digest(faulty_engine)
    faulty_engine.wait_until(
        lambda s: faulty_engine.campaign_status(s, campaign_id) == CampaignStatus.DONE,
        "the campaign",
    )
    received = Counter(to for to, _ in faulty_engine.received())
    assert received == Counter(e for e in emails if not e.startswith("bounce"))
    with faulty_engine.session() as session:
        statuses = dict(
            session.execute(
                select(Subscriber.email, Delivery.status).join(
                    Delivery, Delivery.subscriber_id == Subscriber.id
                )
            ).all()
        )
        assert statuses["bounce@example.org"] == DeliveryStatus.BOUNCED
        assert statuses["busy@example.org"] == statuses["drop@example.org"] == DeliveryStatus.SENT
        assert subscribers.suppression_reason(session, "bounce@example.org") is not None
    assert isinstance(faulty_engine.inbox, FaultyInbox)
    assert faulty_engine.inbox.refused == Counter(
        {"bounce@example.org": 1, "busy@example.org": 1, "drop@example.org": 1}
    )
