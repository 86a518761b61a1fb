"""The JSON API: happy path, and a clear 4xx with nothing written for every bad input."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.subscribers import service
from newsletter.subscribers.models import Consent, Subscriber, SubscriberStatus
from tests.conftest import QueuedTasks
from tests.factories import make_subscriber, unique_email


def _rows(session: Session) -> tuple[int, int]:
    return (
        session.scalar(select(func.count()).select_from(Subscriber)) or 0,
        session.scalar(select(func.count()).select_from(Consent)) or 0,
    )


def test_topics_are_listed(client: TestClient) -> None:
    response = client.get("/api/v1/topics")
    assert response.status_code == 200
    slugs = [topic["slug"] for topic in response.json()]
    assert {"spine-mri", "sciatica-back-pain", "headaches"} <= set(slugs)
    assert all(topic["name"] and topic["description"] for topic in response.json())


def test_signup_answers_202_with_the_pending_subscription(
    client: TestClient, session: Session, queued: QueuedTasks
) -> None:
    email = unique_email()
    response = client.post(
        "/api/v1/subscriptions",
        json={"email": f"  {email.upper()}  ".strip(), "topics": ["headaches"], "name": "Zoë"},
        headers={"user-agent": "api-test/1"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "pending_confirmation"
    assert body["topics"] == ["headaches"]
    assert body["timezone"] == "America/New_York"
    subscriber = service.get_subscriber_by_email(session, email)
    assert subscriber is not None
    assert subscriber.status == SubscriberStatus.PENDING
    assert subscriber.name == "Zoë"
    assert subscriber.consents[0].user_agent == "api-test/1"
    assert subscriber.consents[0].source == "api"
    assert [name for name, _ in queued.names()] == [service.SEND_CONFIRMATION]


def test_the_answer_does_not_reveal_whether_an_address_is_subscribed(
    client: TestClient, session: Session
) -> None:
    known = make_subscriber(session, topics=("headaches",))
    session.commit()
    unknown = unique_email()
    answers = [
        client.post("/api/v1/subscriptions", json={"email": email, "topics": ["headaches"]})
        for email in (known.email, unknown)
    ]
    assert [answer.status_code for answer in answers] == [202, 202]
    strip = [{k: v for k, v in a.json().items() if k != "email"} for a in answers]
    assert strip[0] == strip[1]


BAD_REQUESTS = [
    pytest.param(b"{not json", 400, "malformed JSON", id="malformed-json"),
    pytest.param(b"", 422, "body", id="empty-body"),
    pytest.param(b"[]", 422, "body", id="array-instead-of-object"),
    pytest.param({"topics": ["headaches"]}, 422, "email: Field required", id="missing-email"),
    pytest.param({"email": 42, "topics": ["headaches"]}, 422, "email", id="email-not-a-string"),
    pytest.param({"email": "nobody", "topics": ["headaches"]}, 422, "@-sign", id="invalid-address"),
    pytest.param(
        {"email": "a@b@example.org", "topics": ["headaches"]}, 422, "email", id="two-at-signs"
    ),
    pytest.param(
        {"email": "x" * 250 + "@example.org", "topics": ["headaches"]},
        422,
        "email",
        id="over-long-address",
    ),
    pytest.param(
        {"email": "ok@example.org\r\nBcc: victim@example.org", "topics": ["headaches"]},
        422,
        "email",
        id="crlf-in-address",
    ),
    pytest.param(
        {
            "email": "ok@example.org",
            "name": "Eve\r\nBcc: victim@example.org",
            "topics": ["headaches"],
        },
        422,
        "name: must not contain line breaks",
        id="crlf-in-name",
    ),
    pytest.param(
        {"email": "ok@example.org", "name": "n" * 101, "topics": ["headaches"]},
        422,
        "name",
        id="over-long-name",
    ),
    pytest.param(
        {"email": "ok@example.org", "name": ["x"], "topics": ["headaches"]},
        422,
        "name",
        id="name-wrong-type",
    ),
    pytest.param({"email": "ok@example.org", "topics": []}, 422, "topics", id="no-topics"),
    pytest.param(
        {"email": "ok@example.org", "topics": "headaches"}, 422, "topics", id="topics-not-a-list"
    ),
    pytest.param(
        {"email": "ok@example.org", "topics": ["headaches", "astrology"]},
        422,
        "unknown topic(s): astrology",
        id="unknown-topic",
    ),
    pytest.param(
        {"email": "ok@example.org", "topics": ["t"] * 21}, 422, "topics", id="too-many-topics"
    ),
    pytest.param(
        {"email": "ok@example.org", "topics": ["headaches"], "timezone": "Mars/Olympus"},
        422,
        "unknown time zone",
        id="unknown-timezone",
    ),
    pytest.param(
        {"email": "ok@example.org", "topics": ["headaches"], "admin": True},
        422,
        "admin",
        id="unexpected-field",
    ),
    pytest.param(b"{" + b'"email": "' + b"a" * 70000 + b'"}', 413, "too large", id="huge-body"),
]


@pytest.mark.parametrize(("payload", "status", "message"), BAD_REQUESTS)
def test_bad_signups_get_a_clear_4xx_and_write_nothing(
    client: TestClient,
    session: Session,
    queued: QueuedTasks,
    payload: object,
    status: int,
    message: str,
) -> None:
    before = _rows(session)
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = client.post(
        "/api/v1/subscriptions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert _rows(session) == before
    assert queued.names() == []


def test_openapi_describes_the_signup_and_its_errors(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/api/v1/subscriptions"]["post"]
    assert {"202", "400", "413", "422"} <= set(operation["responses"])
