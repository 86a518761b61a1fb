"""The whole double opt-in through real processes: web, Celery worker, Redis, SMTP, DB."""

from __future__ import annotations

import re
from email.message import EmailMessage

import httpx
from sqlalchemy.orm import Session

from newsletter.delivery.dev_inbox import InboxMessage
from newsletter.subscribers import service as subscribers
from newsletter.subscribers.models import SubscriberStatus
from tests.factories import unique_email
from tests.integration.conftest import RunningService


def _messages_to(service: RunningService, address: str, count: int) -> list[EmailMessage]:
    """Wait until `address` has received `count` messages; return them oldest first."""

    def addressed(messages: list[InboxMessage]) -> list[InboxMessage]:
        return [message for message in messages if message.to == address]

    found = addressed(
        service.sink.handler.wait_until(lambda all_: len(addressed(all_)) >= count, timeout=60)
    )
    assert len(found) >= count, f"{address} got {len(found)} of {count} messages"
    return [message.parsed() for message in reversed(found)]


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


def test_signup_confirm_welcome_and_unsubscribe(service: RunningService) -> None:
    address = unique_email("journey")
    with service.http() as http:
        answer = http.post(
            "/api/v1/subscriptions",
            json={
                "email": address,
                "name": "Sam",
                "topics": ["spine-mri", "headaches"],
                "timezone": "Europe/Berlin",
            },
        )
        assert answer.status_code == 202, answer.text

        [confirmation] = _messages_to(service, address, 1)
        assert confirmation["Subject"].startswith("Please confirm")
        assert confirmation.defects == []
        link = re.search(re.escape(service.base_url) + r"(/confirm/\S+)", _text(confirmation))
        assert link, _text(confirmation)
        assert http.get(link.group(1)).status_code == 200
        confirmed = http.post(link.group(1))
        assert confirmed.status_code == 200 and "subscribed" in confirmed.text

        _, welcome = _messages_to(service, address, 2)
        assert welcome["Subject"].startswith("Welcome")
        assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe = re.fullmatch(r"<(.+)>", welcome["List-Unsubscribe"])
        assert unsubscribe and unsubscribe.group(1).startswith(service.base_url + "/u/")

        # What a mailbox provider does for RFC 8058: POST the header's URL, no cookies.
        one_click = httpx.post(
            unsubscribe.group(1),
            content=b"List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert one_click.status_code == 200
        assert not one_click.is_redirect

    with Session(service.engine) as session:
        subscriber = subscribers.get_subscriber_by_email(session, address)
        assert subscriber is not None
        assert subscriber.status == SubscriberStatus.UNSUBSCRIBED
        assert subscriber.topic_slugs == ["spine-mri", "headaches"]
        assert subscriber.timezone == "Europe/Berlin"
        assert subscribers.suppression_reason(session, address) is not None


def test_signing_up_an_active_address_sends_a_notice_not_a_confirmation(
    service: RunningService,
) -> None:
    address = unique_email("again")
    with service.http() as http:
        http.post("/api/v1/subscriptions", json={"email": address, "topics": ["headaches"]})
        [confirmation] = _messages_to(service, address, 1)
        link = re.search(re.escape(service.base_url) + r"(/confirm/\S+)", _text(confirmation))
        assert link
        http.post(link.group(1))
        _messages_to(service, address, 2)

        again = http.post("/api/v1/subscriptions", json={"email": address, "topics": ["spine-mri"]})
        assert again.status_code == 202
        *_, notice = _messages_to(service, address, 3)
    assert notice["Subject"].startswith("You are already subscribed")
    assert "/p/" in _text(notice)
