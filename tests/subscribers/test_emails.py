"""Lifecycle emails, sent through the real SMTP transport and parsed back."""

from __future__ import annotations

import re
from email.message import EmailMessage

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.dev_inbox import InboxMessage
from newsletter.delivery.sender import make_sender
from newsletter.subscribers.emails import LifecycleEmail, send_lifecycle_email
from newsletter.subscribers.models import SubscriberStatus
from tests.conftest import SmtpSink
from tests.factories import make_subscriber


def _send(
    session: Session, settings: Settings, sink: SmtpSink, subscriber_id: int, kind: LifecycleEmail
) -> EmailMessage:
    skipped = send_lifecycle_email(
        session,
        subscriber_id,
        kind,
        settings=settings,
        sender=make_sender(settings, smtp_url=sink.url),
    )
    assert skipped is None
    [message] = sink.wait_for(1)
    assert isinstance(message, InboxMessage)
    return message.parsed()


def _parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    types = [part.get_content_type() for part in message.iter_parts()]
    assert types == ["text/plain", "text/html"]
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()


def _no_defects(message: EmailMessage) -> None:
    assert message.defects == []
    for part in message.walk():
        assert part.defects == [], part.defects


def test_confirmation_email_has_both_parts_and_a_working_link(
    session: Session, settings: Settings, smtp_sink: SmtpSink, client: TestClient
) -> None:
    subscriber = make_subscriber(
        session, status=SubscriberStatus.PENDING, name="Zoë", topics=("spine-mri", "headaches")
    )
    session.commit()
    message = _send(session, settings, smtp_sink, subscriber.id, LifecycleEmail.CONFIRM)

    _no_defects(message)
    assert message["To"] == subscriber.email
    assert message["Subject"] == f"Please confirm your subscription to {settings.publisher_name}"
    assert message["Message-ID"].endswith("@example.org>")
    assert message["Date"]
    assert "List-Unsubscribe" not in message  # not subscribed yet
    text, html = _parts(message)
    assert "Hello Zoë" in text and "Hello Zoë" in html
    assert "Spine & MRI, Headaches" in text
    assert "<p>" not in text and "{{" not in text + html and "None" not in text
    assert 'style="' in html and "<style" in html  # inlined, with media queries kept
    assert "!important" in html

    [link] = re.findall(r"https://news\.example\.org(/confirm/\S+)", text)
    assert link in html
    assert client.post(link).status_code == 200
    session.refresh(subscriber)
    assert subscriber.status == SubscriberStatus.ACTIVE


def test_welcome_email_carries_one_click_unsubscribe_headers_that_work(
    session: Session, settings: Settings, smtp_sink: SmtpSink, client: TestClient
) -> None:
    subscriber = make_subscriber(session, topics=("sciatica-back-pain",))
    session.commit()
    message = _send(session, settings, smtp_sink, subscriber.id, LifecycleEmail.WELCOME)

    _no_defects(message)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    match = re.fullmatch(
        r"<https://news\.example\.org(/u/[A-Za-z0-9_.\-]+)>", message["List-Unsubscribe"]
    )
    assert match, message["List-Unsubscribe"]
    text, html = _parts(message)
    assert "/p/" in text and "/p/" in html and match.group(1) in html

    response = client.post(
        match.group(1),
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    session.refresh(subscriber)
    assert subscriber.status == SubscriberStatus.UNSUBSCRIBED


def test_raw_headers_are_plain_ascii_and_list_unsubscribe_is_not_encoded(
    session: Session, settings: Settings, smtp_sink: SmtpSink
) -> None:
    subscriber = make_subscriber(session, name="Ünal <script>")
    session.commit()
    send_lifecycle_email(
        session,
        subscriber.id,
        LifecycleEmail.WELCOME,
        settings=settings,
        sender=make_sender(settings, smtp_url=smtp_sink.url),
    )
    [message] = smtp_sink.wait_for(1)
    assert isinstance(message, InboxMessage)
    raw = message.path.read_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert b"=?" not in re.search(rb"List-Unsubscribe:[^\r]*", head).group(0)  # type: ignore[union-attr]
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    _, html = _parts(message.parsed())
    assert "Ünal &lt;script&gt;" in html and "<script>" not in html


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (SubscriberStatus.ACTIVE, LifecycleEmail.CONFIRM),
        (SubscriberStatus.UNSUBSCRIBED, LifecycleEmail.WELCOME),
        (SubscriberStatus.PENDING, LifecycleEmail.ALREADY_SUBSCRIBED),
    ],
)
def test_an_email_that_no_longer_applies_is_skipped(
    session: Session,
    settings: Settings,
    smtp_sink: SmtpSink,
    status: SubscriberStatus,
    kind: LifecycleEmail,
) -> None:
    subscriber = make_subscriber(session, status=status)
    skipped = send_lifecycle_email(
        session,
        subscriber.id,
        kind,
        settings=settings,
        sender=make_sender(settings, smtp_url=smtp_sink.url),
    )
    assert skipped == f"subscriber is {status}"
    assert list(smtp_sink.folder.glob("*.eml")) == []
