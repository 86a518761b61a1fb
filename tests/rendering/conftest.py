"""Every email template rendered once, realistically, into the bytes that would be sent.

The messages do not depend on the database backend, so they are built once per test
session on a migrated SQLite database (inside a transaction that is rolled back)
instead of once per backend: the checks that read them (v.Nu, SpamAssassin,
chromium) start slow external programs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy

import pytest
from sqlalchemy.orm import Session

from newsletter.campaigns.broadcast import BroadcastEdition
from newsletter.campaigns.digest import last_week, load_edition, recipient_of
from newsletter.config import Settings, get_settings
from newsletter.content.models import Article
from newsletter.db import make_engine, utcnow
from newsletter.rendering.personal import personal_values
from newsletter.subscribers.emails import LifecycleEmail, build_lifecycle_email
from newsletter.subscribers.models import SubscriberStatus
from newsletter.subscribers.tokens import signer_for
from tests.conftest import create_database, migrate
from tests.factories import make_article, make_subscriber

TEMPLATES = ("confirm", "welcome", "already-subscribed", "digest", "broadcast")
# The emails sent to someone on the list, which must let them leave it in one click.
CAMPAIGN_TEMPLATES = ("welcome", "digest", "broadcast")

BROADCAST_SUBJECT = "Our spring webinar on chronic back pain: questions welcome"
BROADCAST_MARKDOWN = """\
## Join Dr. Zoë Ortiz live on April 14

Chronic back pain affects about one adult in five. In our free webinar,
Dr. Zoë Ortiz and physiotherapist José Núñez answer *your* questions about:

- when an MRI helps, and when it does not;
- exercises that are safe during a flare-up;
- medicines, injections and surgery: what the evidence says.

You can [send your questions in advance](https://health.example.org/webinar/questions)
or read [last year's summary](https://health.example.org/articles/webinar-2025) first.

> The recording will be sent to every subscriber the week after.
"""


@dataclass(frozen=True)
class SampleEmail:
    """One template's message as it would go on the wire, and the reader's own links."""

    name: str
    data: bytes
    preferences_url: str | None
    unsubscribe_url: str | None

    @property
    def parsed(self) -> EmailMessage:
        message = BytesParser(policy=default_policy).parsebytes(self.data)
        assert isinstance(message, EmailMessage)
        return message

    def part(self, subtype: str) -> EmailMessage:
        body = self.parsed.get_body(preferencelist=(subtype,))
        assert isinstance(body, EmailMessage), f"{self.name}: no text/{subtype} part"
        return body

    @property
    def text(self) -> str:
        content: str = self.part("plain").get_content()
        return content

    @property
    def html(self) -> str:
        content: str = self.part("html").get_content()
        return content


def _article(
    session: Session,
    *,
    title: str,
    topics: tuple[str, ...],
    summary: str,
    author: str = "Dr. Zoë Ortiz",
    days_ago: float = 2,
) -> Article:
    article = make_article(session, title=title, topics=topics, summary=summary, days_ago=days_ago)
    article.author = author  # the factory's author is plain ASCII
    return article


def _digest_articles(session: Session) -> None:
    """Two topics with two and three articles: long titles, images, accented names."""
    _article(
        session,
        title="What your lumbar MRI report really means: discs, bulges, protrusions and the "
        "words radiologists use that sound far more alarming than they are",
        topics=("spine-mri",),
        summary="Most lumbar MRI reports of adults over forty mention disc bulges; most of "
        "them cause no pain at all. Here is how to read yours, line by line.",
    )
    _article(
        session,
        title="Open, closed or upright MRI? Choosing a scanner when you are claustrophobic",
        topics=("spine-mri",),
        summary="An open scanner is quieter and roomier, but its images are less detailed. "
        "We compare the options and what to ask your clinic.",
        author="François Lévêque, MD",
        days_ago=4,
    )
    _article(
        session,
        title="Cluster headaches, migraines and tension headaches: how to tell them apart",
        topics=("headaches",),
        summary="The timing, the side of the head and what makes them better or worse "
        "usually point to the right diagnosis.",
    )
    _article(
        session,
        title="Medication-overuse headache: when painkillers keep the pain going",
        topics=("headaches",),
        summary="Taking painkillers on more than ten days a month can itself cause "
        "daily headaches. Here is how a supervised break works.",
        author="Dr. Søren Åberg",
        days_ago=3,
    )
    _article(
        session,
        title="Ice-pick headaches explained",
        topics=("headaches",),
        summary="Brief stabbing pains that last a second or two are alarming but usually harmless.",
        days_ago=5,
    )


def _build_samples(session: Session, settings: Settings) -> dict[str, SampleEmail]:
    signer = signer_for(settings.effective_secret_key, settings.confirm_token_max_age_seconds)
    raw: dict[str, bytes] = {}

    pending = make_subscriber(
        session, name="Zoë", status=SubscriberStatus.PENDING, topics=("spine-mri", "headaches")
    )
    raw["confirm"] = build_lifecycle_email(pending, LifecycleEmail.CONFIRM, settings=settings).data
    reader = make_subscriber(session, name="Zoë", topics=("spine-mri", "headaches"))
    raw["welcome"] = build_lifecycle_email(reader, LifecycleEmail.WELCOME, settings=settings).data
    raw["already-subscribed"] = build_lifecycle_email(
        reader, LifecycleEmail.ALREADY_SUBSCRIBED, settings=settings
    ).data

    _digest_articles(session)
    start, end = last_week(utcnow())
    edition = load_edition(session, start=start, end=end, settings=settings)
    digest = edition.message_for(recipient_of(reader), signer=signer)
    assert digest is not None, "the sample reader's digest is empty"
    raw["digest"] = digest.data

    broadcast = BroadcastEdition(
        subject=BROADCAST_SUBJECT,
        body_markdown=BROADCAST_MARKDOWN,
        settings=settings,
        campaign_id="broadcast-webinar",
    ).message_for(recipient_of(reader), signer=signer)
    assert broadcast is not None
    raw["broadcast"] = broadcast.data
    values = personal_values(
        reader.id, reader.name, base_url=settings.effective_base_url, signer=signer
    )

    # Every email but the confirmation goes to a reader on the list: the same links.
    return {
        name: SampleEmail(
            name,
            data,
            preferences_url=None if name == "confirm" else values["preferences_url"],
            unsubscribe_url=None if name == "confirm" else values["unsubscribe_url"],
        )
        for name, data in raw.items()
    }


@pytest.fixture(scope="session")
def sample_emails() -> Iterator[dict[str, SampleEmail]]:
    """Each template's message, keyed by template name, rendered once per test session."""
    settings = get_settings()
    engine = make_engine(create_database("sqlite", f"rendering_{uuid.uuid4().hex[:10]}"))
    migrate(engine)
    connection = engine.connect()
    transaction = connection.begin()
    try:
        with Session(bind=connection, join_transaction_mode="create_savepoint") as session:
            samples = _build_samples(session, settings)
        yield samples
    finally:
        transaction.rollback()
        connection.close()
        engine.dispose()
