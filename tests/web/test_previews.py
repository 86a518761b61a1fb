"""Digest previews through the staff API and the embedded mode's page."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default as default_policy

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import make_article, make_staff_token, make_subscriber


def test_staff_preview_needs_a_token(client: TestClient, session: Session) -> None:
    reader = make_subscriber(session)
    session.commit()
    response = client.get("/api/v1/digest/preview", params={"email": reader.email})
    assert response.status_code == 401


def test_staff_preview_returns_the_message_or_a_part(client: TestClient, session: Session) -> None:
    make_article(session, title="Disc desiccation, explained", topics=["spine-mri"])
    reader = make_subscriber(session, topics=("spine-mri",))
    headers = {"authorization": f"Bearer {make_staff_token(session)}"}
    session.commit()

    eml = client.get("/api/v1/digest/preview", params={"email": reader.email}, headers=headers)
    assert eml.status_code == 200
    assert eml.headers["content-type"] == "message/rfc822"
    message = message_from_bytes(eml.content, policy=default_policy)
    assert message["To"] == reader.email

    html = client.get(
        "/api/v1/digest/preview", params={"email": reader.email, "part": "html"}, headers=headers
    )
    assert "Disc desiccation, explained" in html.text
    missing = client.get(
        "/api/v1/digest/preview", params={"email": "nobody@example.org"}, headers=headers
    )
    assert missing.status_code == 404 and "no subscriber" in missing.json()["detail"]
    bad = client.get(
        "/api/v1/digest/preview", params={"email": reader.email, "part": "pdf"}, headers=headers
    )
    assert bad.status_code == 422


def test_dev_preview_page(client: TestClient, session: Session) -> None:
    make_article(session, title="Open MRI machines", topics=["spine-mri"])
    reader = make_subscriber(session, topics=("spine-mri",))
    session.commit()
    assert client.get("/dev/digest-preview").status_code == 200
    page = client.get("/dev/digest-preview", params={"email": reader.email})
    assert page.status_code == 200 and "Open MRI machines" in page.text
    assert client.get("/dev/digest-preview", params={"email": "x@example.org"}).status_code == 404
