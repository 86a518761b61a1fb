"""The staff API: bearer tokens, and articles created or updated by canonical URL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.content.models import Article
from newsletter.staff.models import StaffToken
from newsletter.staff.service import revoke_staff_token
from tests.factories import article_payload, make_staff_token


def _articles(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Article)) or 0


@pytest.fixture
def staff_headers(session: Session) -> dict[str, str]:
    token = make_staff_token(session)
    session.commit()
    return {"authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer nlst_not-a-real-token"},
        {"authorization": "Bearer "},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"authorization": "nlst_missing-scheme"},
    ],
    ids=["none", "unknown", "empty", "basic", "no-scheme"],
)
def test_article_api_needs_a_valid_token_and_writes_nothing_without(
    client: TestClient, session: Session, headers: dict[str, str]
) -> None:
    response = client.post("/api/v1/articles", json=article_payload(), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"]
    assert _articles(session) == 0


def test_a_revoked_token_is_refused(client: TestClient, session: Session) -> None:
    plain = make_staff_token(session)
    token = session.scalar(select(StaffToken))
    assert token is not None
    revoke_staff_token(session, token.id)
    session.commit()
    response = client.post(
        "/api/v1/articles", json=article_payload(), headers={"authorization": f"Bearer {plain}"}
    )
    assert response.status_code == 401
    assert _articles(session) == 0


def test_create_then_update_by_canonical_url(
    client: TestClient, session: Session, staff_headers: dict[str, str]
) -> None:
    payload = article_payload()
    created = client.post("/api/v1/articles", json=payload, headers=staff_headers)
    assert created.status_code == 201, created.text
    assert created.json()["created"] is True
    assert created.json()["topics"] == ["spine-mri", "sciatica-back-pain"]

    edited = {**payload, "title": "What a lumbar spine MRI can show", "topics": ["spine-mri"]}
    updated = client.post("/api/v1/articles", json=edited, headers=staff_headers)
    assert updated.status_code == 200
    assert updated.json()["id"] == created.json()["id"]
    assert _articles(session) == 1
    article = session.scalar(select(Article))
    assert article is not None
    assert article.title == "What a lumbar spine MRI can show"
    assert "<strong>lumbar spine</strong>" in article.body_html
    token = session.scalar(select(StaffToken))
    assert token is not None and token.last_used_at is not None


def test_unsafe_html_is_sanitised(
    client: TestClient, session: Session, staff_headers: dict[str, str]
) -> None:
    payload = article_payload(
        body_markdown=None,
        body_html='<p onclick="x()">Safe <script>alert(1)</script><a href="javascript:x">'
        "link</a><iframe src=https://evil.example></iframe></p>",
    )
    assert client.post("/api/v1/articles", json=payload, headers=staff_headers).status_code == 201
    article = session.scalar(select(Article))
    assert article is not None
    for unsafe in ("script", "onclick", "javascript:", "iframe"):
        assert unsafe not in article.body_html
    assert "Safe" in article.body_html


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"title": ""}, "title"),
        ({"title": "t" * 301}, "title"),
        ({"canonical_url": "http://health.example.org/a"}, "https"),
        ({"canonical_url": "not a url"}, "https"),
        ({"image_alt": ""}, "image_alt is required"),
        ({"image_url": "javascript:alert(1)"}, "image_url"),
        ({"published_at": "2026-11-20T09:00:00"}, "time zone"),
        ({"published_at": "yesterday"}, "published_at"),
        ({"topics": []}, "topics"),
        ({"topics": ["astrology"]}, "unknown topic(s): astrology"),
        ({"body_html": "<p>x</p>"}, "not both"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_articles_get_422_and_nothing_is_written(
    client: TestClient,
    session: Session,
    staff_headers: dict[str, str],
    overrides: dict[str, object],
    message: str,
) -> None:
    response = client.post(
        "/api/v1/articles", json=article_payload(**overrides), headers=staff_headers
    )
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert _articles(session) == 0


def test_malformed_json_is_400(client: TestClient, staff_headers: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/articles",
        content=b'{"title": ',
        headers={**staff_headers, "content-type": "application/json"},
    )
    assert response.status_code == 400


def test_line_breaks_in_a_title_are_folded_into_one_line(
    client: TestClient, session: Session, staff_headers: dict[str, str]
) -> None:
    payload = article_payload(title="Line\r\nBcc: x@example.org")
    assert client.post("/api/v1/articles", json=payload, headers=staff_headers).status_code == 201
    article = session.scalar(select(Article))
    assert article is not None and article.title == "Line Bcc: x@example.org"
