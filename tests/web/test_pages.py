"""Public pages: the signup form, confirm links, preferences, RFC 8058 unsubscribe."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.subscribers import service
from newsletter.subscribers.models import Subscriber, SubscriberStatus
from newsletter.subscribers.tokens import TokenSigner, signer_for
from tests.conftest import QueuedTasks
from tests.factories import make_subscriber, unique_email


@pytest.fixture
def signer(settings: Settings) -> TokenSigner:
    return signer_for(settings.effective_secret_key, settings.confirm_token_max_age_seconds)


def _count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Subscriber)) or 0


def _tamper(token: str) -> str:
    """The token with one character of its signature changed."""
    position = len(token) - 10
    replacement = "A" if token[position] != "A" else "B"
    return token[:position] + replacement + token[position + 1 :]


def test_signup_page_lists_topics_and_works_without_javascript(client: TestClient) -> None:
    page = client.get("/subscribe")
    assert page.status_code == 200
    assert 'name="topics" value="spine-mri"' in page.text
    assert 'method="post"' in page.text
    assert "newsletter-timezone" in page.text


def test_form_signup_with_browser_timezone(
    client: TestClient, session: Session, queued: QueuedTasks
) -> None:
    email = unique_email()
    response = client.post(
        "/subscribe",
        data={
            "email": email,
            "name": "Ana",
            "topics": ["headaches", "neck-pain"],
            "timezone": "Asia/Kolkata",
        },
    )
    assert response.status_code == 200
    assert "Check your inbox" in response.text
    subscriber = service.get_subscriber_by_email(session, email)
    assert subscriber is not None
    assert (subscriber.timezone, subscriber.topic_slugs) == (
        "Asia/Kolkata",
        ["headaches", "neck-pain"],
    )
    assert subscriber.consents[0].source == "form"


def test_form_signup_without_javascript_falls_back_to_the_publisher_timezone(
    client: TestClient, session: Session, settings: Settings
) -> None:
    email = unique_email()
    for timezone in ("", "Not/AZone"):
        client.post(
            "/subscribe", data={"email": email, "topics": ["headaches"], "timezone": timezone}
        )
    subscriber = service.get_subscriber_by_email(session, email)
    assert subscriber is not None
    assert subscriber.timezone == settings.default_timezone


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"email": "not-an-address", "topics": ["headaches"]}, "@-sign"),
        ({"email": "", "topics": ["headaches"]}, "email"),
        ({"email": "ok@example.org"}, "topics"),
        ({"email": "ok@example.org", "topics": ["astrology"]}, "unknown topic(s): astrology"),
        (
            {"email": "ok@example.org", "name": "x\r\nBcc: a@b.c", "topics": ["headaches"]},
            "line breaks",
        ),
        ({"email": "ok@example.org", "name": "n" * 101, "topics": ["headaches"]}, "name"),
        ({"email": "a" * 300 + "@example.org", "topics": ["headaches"]}, "email"),
    ],
)
def test_bad_form_input_reshows_the_form_with_a_message_and_writes_nothing(
    client: TestClient, session: Session, form: dict[str, object], message: str
) -> None:
    before = _count(session)
    response = client.post("/subscribe", data=form)
    assert response.status_code == 422
    assert "Please correct the following" in response.text
    assert message.replace("'", "&#39;") in response.text
    assert 'name="topics"' in response.text
    assert _count(session) == before


def test_form_posted_as_json_or_too_large_is_refused(client: TestClient, session: Session) -> None:
    before = _count(session)
    assert client.post("/subscribe", json={"email": "a@example.org"}).status_code == 400
    huge = client.post("/subscribe", data={"email": "a@example.org", "name": "x" * 70000})
    assert huge.status_code == 413
    assert _count(session) == before


def test_embed_snippet_and_iframe_form(client: TestClient) -> None:
    snippet = client.get("/embed/snippet")
    assert snippet.status_code == 200
    assert "&lt;iframe src=&#34;https://news.example.org/embed&#34;" in snippet.text or (
        "&lt;iframe" in snippet.text and "/embed" in snippet.text
    )
    assert client.get("/embed").status_code == 200


def test_confirm_link_asks_for_a_click_then_confirms(
    client: TestClient, session: Session, signer: TokenSigner
) -> None:
    subscriber = make_subscriber(session, status=SubscriberStatus.PENDING)
    session.commit()
    token = signer.confirm_token(subscriber.id, subscriber.confirmation_nonce)

    shown = client.get(f"/confirm/{token}")
    assert shown.status_code == 200
    session.refresh(subscriber)
    assert subscriber.status == SubscriberStatus.PENDING

    first = client.post(f"/confirm/{token}")
    again = client.post(f"/confirm/{token}")
    assert (first.status_code, again.status_code) == (200, 200)
    assert "You&#39;re subscribed" in first.text
    assert "already subscribed" in again.text
    session.refresh(subscriber)
    assert subscriber.status == SubscriberStatus.ACTIVE


def test_tampered_confirm_link_gets_a_friendly_page_with_a_way_to_resend(
    client: TestClient, session: Session, signer: TokenSigner
) -> None:
    subscriber = make_subscriber(session, status=SubscriberStatus.PENDING)
    session.commit()
    token = _tamper(signer.confirm_token(subscriber.id, subscriber.confirmation_nonce))
    for response in (client.get(f"/confirm/{token}"), client.post(f"/confirm/{token}")):
        assert response.status_code == 400
        assert "This link does not work" in response.text
        assert 'action="https://news.example.org/resend-confirmation"' in response.text
    session.refresh(subscriber)
    assert subscriber.status == SubscriberStatus.PENDING


def test_expired_confirm_link_offers_a_new_one(
    client: TestClient, session: Session, settings: Settings, queued: QueuedTasks
) -> None:
    subscriber = make_subscriber(session, status=SubscriberStatus.PENDING)
    session.commit()
    stale = TokenSigner(settings.effective_secret_key, confirm_max_age=-1)
    token = stale.confirm_token(subscriber.id, subscriber.confirmation_nonce)
    client.app.state.settings = settings.model_copy(update={"confirm_token_max_age_seconds": -1})

    page = client.get(f"/confirm/{token}")
    assert page.status_code == 410
    assert f'name="token" value="{token}"' in page.text

    resent = client.post("/resend-confirmation", data={"token": token})
    assert resent.status_code == 200
    assert queued.names() == [(service.SEND_CONFIRMATION, [subscriber.id])]


def test_resend_by_address_answers_the_same_for_unknown_addresses(
    client: TestClient, session: Session, queued: QueuedTasks
) -> None:
    pending = make_subscriber(session, status=SubscriberStatus.PENDING)
    session.commit()
    known = client.post("/resend-confirmation", data={"email": pending.email})
    unknown = client.post("/resend-confirmation", data={"email": unique_email()})
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text
    assert queued.names() == [(service.SEND_CONFIRMATION, [pending.id])]
    assert client.post("/resend-confirmation", data={"email": "bad"}).status_code == 422


def test_preferences_page_changes_topics_name_timezone_and_pause(
    client: TestClient, session: Session, signer: TokenSigner
) -> None:
    subscriber = make_subscriber(session, topics=("spine-mri",))
    session.commit()
    token = signer.manage_token(subscriber.id)
    page = client.get(f"/p/{token}")
    assert page.status_code == 200
    assert subscriber.email in page.text

    saved = client.post(
        f"/p/{token}",
        data={
            "name": "Bea",
            "topics": ["headaches", "sciatica-back-pain"],
            "timezone": "America/Chicago",
            "digest_paused": "on",
        },
    )
    assert saved.status_code == 200
    assert "Your preferences are saved." in saved.text
    session.refresh(subscriber)
    assert subscriber.topic_slugs == ["sciatica-back-pain", "headaches"]
    assert (subscriber.name, subscriber.timezone, subscriber.digest_paused) == (
        "Bea",
        "America/Chicago",
        True,
    )


@pytest.mark.parametrize(
    "form",
    [
        {"name": "Bea", "topics": [], "timezone": "UTC"},
        {"name": "Bea", "topics": ["astrology"], "timezone": "UTC"},
        {"name": "Bea", "topics": ["headaches"], "timezone": "Nowhere/Land"},
        {"name": "B\nea", "topics": ["headaches"], "timezone": "UTC"},
    ],
)
def test_bad_preferences_are_refused_and_change_nothing(
    client: TestClient, session: Session, signer: TokenSigner, form: dict[str, object]
) -> None:
    subscriber = make_subscriber(session, topics=("spine-mri",))
    session.commit()
    response = client.post(f"/p/{signer.manage_token(subscriber.id)}", data=form)
    assert response.status_code == 422
    assert "Please correct the following" in response.text
    session.refresh(subscriber)
    assert (subscriber.name, subscriber.topic_slugs, subscriber.timezone) == (
        "Ada",
        ["spine-mri"],
        "Europe/Paris",
    )


def test_unsubscribe_get_shows_a_form_and_never_unsubscribes(
    client: TestClient, session: Session, signer: TokenSigner
) -> None:
    subscriber = make_subscriber(session)
    session.commit()
    token = signer.manage_token(subscriber.id)
    page = client.get(f"/u/{token}")
    assert page.status_code == 200
    assert re.search(r'<form method="post" action="[^"]*/u/' + re.escape(token), page.text)
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    session.refresh(subscriber)
    assert subscriber.status == SubscriberStatus.ACTIVE


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribe_answers_200_without_redirect_and_replays_are_idempotent(
    client: TestClient, session: Session, signer: TokenSigner, encoding: str
) -> None:
    subscriber = make_subscriber(session)
    session.commit()
    token = signer.manage_token(subscriber.id)

    def post() -> int:
        if encoding == "urlencoded":
            return client.post(
                f"/u/{token}",
                content=b"List-Unsubscribe=One-Click",
                headers={"content-type": "application/x-www-form-urlencoded"},
            ).status_code
        return client.post(
            f"/u/{token}", files={"List-Unsubscribe": (None, "One-Click")}
        ).status_code

    assert [post(), post()] == [200, 200]
    session.refresh(subscriber)
    assert subscriber.status == SubscriberStatus.UNSUBSCRIBED
    assert service.suppression_reason(session, subscriber.email) is not None
    assert "not subscribed" in client.get(f"/u/{token}").text


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"", "application/x-www-form-urlencoded", 400),
        (b"List-Unsubscribe=Yes", "application/x-www-form-urlencoded", 400),
        (b'{"List-Unsubscribe": "One-Click"}', "application/json", 400),
        (
            b"List-Unsubscribe=One-Click&pad=" + b"x" * 100_000,
            "application/x-www-form-urlencoded",
            413,
        ),
        (b"--broken\r\nnot multipart", "multipart/form-data; boundary=broken", 400),
    ],
    ids=["empty", "wrong-value", "json", "huge", "malformed-multipart"],
)
def test_bad_unsubscribe_bodies_get_4xx_and_change_nothing(
    client: TestClient,
    session: Session,
    signer: TokenSigner,
    body: bytes,
    content_type: str,
    status: int,
) -> None:
    subscriber = make_subscriber(session)
    session.commit()
    response = client.post(
        f"/u/{signer.manage_token(subscriber.id)}",
        content=body,
        headers={"content-type": content_type},
    )
    assert response.status_code == status
    session.refresh(subscriber)
    assert subscriber.status == SubscriberStatus.ACTIVE


def test_tampered_unsubscribe_token_gets_4xx_and_changes_nothing(
    client: TestClient, session: Session, signer: TokenSigner
) -> None:
    subscriber = make_subscriber(session)
    session.commit()
    token = _tamper(signer.manage_token(subscriber.id))
    for response in (
        client.get(f"/u/{token}"),
        client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}),
        client.get(f"/p/{token}"),
        client.post(f"/p/{token}", data={"topics": ["headaches"], "timezone": "UTC"}),
    ):
        assert response.status_code == 400
    session.refresh(subscriber)
    assert subscriber.status == SubscriberStatus.ACTIVE
    assert subscriber.topic_slugs == ["spine-mri"]


def test_every_one_character_edit_of_a_token_is_rejected(signer: TokenSigner) -> None:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    manage = signer.manage_token(12345)
    confirm = signer.confirm_token(12345, "0123456789abcdef")
    accepted = []
    for token, read in ((manage, signer.read_manage_token), (confirm, signer.read_confirm_token)):
        for position in range(len(token)):
            for char in alphabet.replace(token[position], ""):
                edited = token[:position] + char + token[position + 1 :]
                try:
                    read(edited)
                except service.InvalidTokenError:
                    continue
                accepted.append(edited)
    assert accepted == []


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").text == "ok"
