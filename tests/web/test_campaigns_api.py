"""The staff campaigns API: every endpoint's happy path, its refusals, and its token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from newsletter.campaigns import runner
from newsletter.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from newsletter.campaigns.schedule import schedule_campaign, start_due_campaigns
from newsletter.campaigns.schemas import BroadcastIn
from newsletter.config import Settings
from newsletter.db import utcnow
from tests.conftest import QueuedTasks, SmtpSink, free_port
from tests.factories import make_staff_token, make_subscriber, unique_email

API = "/api/v1/campaigns"


@pytest.fixture
def staff_headers(session: Session) -> dict[str, str]:
    token = make_staff_token(session)
    session.commit()
    return {"authorization": f"Bearer {token}"}


def broadcast_payload(**overrides: object) -> dict[str, object]:
    """A valid `POST /api/v1/campaigns/broadcasts` body."""
    payload: dict[str, object] = {
        "subject": "New: open MRI appointments on Saturdays",
        "body_markdown": "From December our clinic scans on **Saturdays** too.",
        "name": "Saturday scans",
        "audience": {"topics": ["spine-mri"]},
    }
    payload.update(overrides)
    return payload


def _rows(session: Session) -> tuple[int, int]:
    """(campaigns, deliveries): what a refused request must leave as it was."""
    return (
        session.scalar(select(func.count()).select_from(Campaign)) or 0,
        session.scalar(select(func.count()).select_from(Delivery)) or 0,
    )


def _status(session: Session, campaign_id: int) -> str:
    return str(session.scalar(select(Campaign.status).where(Campaign.id == campaign_id)))


def _draft(session: Session, subject: str = "Clinic news", **kwargs: Any) -> int:
    campaign = runner.create_broadcast_campaign(
        session, subject=subject, body_markdown="Some **news**.", **kwargs
    )
    session.commit()
    return campaign.id


def _with_status(session: Session, status: CampaignStatus) -> int:
    campaign_id = _draft(session)
    session.execute(update(Campaign).where(Campaign.id == campaign_id).values(status=status))
    session.commit()
    return campaign_id


def _use_relay(client: TestClient, settings: Settings, smtp_url: str) -> None:
    """Send the app's mail (test sends) through `smtp_url`."""
    client.app.state.settings = settings.model_copy(update={"smtp_url": smtp_url})


def units_in(session: Session) -> Callable[[], AbstractContextManager[Session]]:
    """Units of work inside the test's transaction, for calling the runner directly."""

    @contextmanager
    def unit() -> Iterator[Session]:
        with session.begin_nested():
            yield session

    return unit


# --- auth: every endpoint, nothing changes without a valid token ---------------------

ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/broadcasts", broadcast_payload()),
    ("GET", "", None),
    ("GET", "/{id}", None),
    ("GET", "/{id}/preview?email=reader@example.org", None),
    ("POST", "/{id}/test-send", {"addresses": ["editor@example.org"]}),
    ("POST", "/{id}/schedule", None),
    ("POST", "/{id}/pause", None),
    ("POST", "/{id}/resume", None),
    ("POST", "/{id}/cancel", None),
]


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer nlst_not-a-real-token"}, {"authorization": "Basic eDp5"}],
    ids=["none", "unknown", "basic"],
)
@pytest.mark.parametrize(
    ("method", "path", "body"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS]
)
def test_every_endpoint_needs_a_token_and_changes_nothing_without(
    client: TestClient,
    session: Session,
    settings: Settings,
    smtp_sink: SmtpSink,
    queued: QueuedTasks,
    headers: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    _use_relay(client, settings, smtp_sink.url)
    make_subscriber(session, email="reader@example.org")
    campaign_id = _with_status(session, CampaignStatus.RUNNING)
    before = _rows(session)
    response = client.request(method, API + path.format(id=campaign_id), json=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"]
    assert _rows(session) == before
    assert _status(session, campaign_id) == CampaignStatus.RUNNING
    assert queued.names() == []
    assert smtp_sink.handler.wait_for(1, timeout=0.2) == []


# --- POST /broadcasts ----------------------------------------------------------------


def test_create_a_broadcast_draft(
    client: TestClient, session: Session, staff_headers: dict[str, str], queued: QueuedTasks
) -> None:
    payload = broadcast_payload(
        audience={"topics": ["spine-mri", "headaches", "spine-mri"]},
        send_at="2036-12-01T09:00:00-05:00",
    )
    response = client.post(f"{API}/broadcasts", json=payload, headers=staff_headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "broadcast"
    assert body["status"] == "draft"
    assert body["name"] == "Saturday scans"
    assert body["subject"] == "New: open MRI appointments on Saturdays"
    assert body["audience"] == {"topics_any": ["spine-mri", "headaches"]}
    assert datetime.fromisoformat(body["send_at"]) == datetime(2036, 12, 1, 14, tzinfo=UTC)
    assert body["total"] == 0 and body["counts"]["sent"] == 0
    assert body["started_at"] is None and body["eta_seconds"] is None
    campaign = session.get(Campaign, body["id"])
    assert campaign is not None
    assert campaign.body_markdown == payload["body_markdown"]
    assert campaign.send_at == datetime(2036, 12, 1, 14, tzinfo=UTC)
    assert queued.names() == []


def test_a_broadcast_without_name_or_audience_goes_to_everyone(
    client: TestClient, session: Session, staff_headers: dict[str, str]
) -> None:
    payload = broadcast_payload()
    del payload["name"], payload["audience"]
    response = client.post(f"{API}/broadcasts", json=payload, headers=staff_headers)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == payload["subject"]
    assert response.json()["audience"] == {}
    assert response.json()["send_at"] is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"subject": ""}, "subject"),
        ({"subject": "   "}, "subject: must not be blank"),
        ({"subject": "s" * 201}, "subject"),
        ({"subject": "Hello\r\nBcc: victim@example.org"}, "subject: must be a single line"),
        ({"subject": "Hello\n"}, "subject: must be a single line"),
        ({"subject": None}, "subject"),
        ({"body_markdown": ""}, "body_markdown"),
        ({"name": "n" * 201}, "name"),
        ({"name": "two\nlines"}, "name: must be a single line"),
        ({"audience": {"topics": ["astrology"]}}, "audience: unknown topic(s): astrology"),
        ({"audience": {"segments": ["x"]}}, "audience.segments"),
        ({"audience": ["spine-mri"]}, "audience"),
        ({"send_at": "2036-12-01T09:00:00"}, "send_at: must include a time zone"),
        ({"send_at": "next tuesday"}, "send_at"),
        ({"send_at": "2020-12-01T09:00:00Z"}, "send_at: must be in the future"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_broadcasts_get_422_and_nothing_is_written(
    client: TestClient,
    session: Session,
    staff_headers: dict[str, str],
    overrides: dict[str, object],
    message: str,
) -> None:
    response = client.post(
        f"{API}/broadcasts", json=broadcast_payload(**overrides), headers=staff_headers
    )
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert _rows(session) == (0, 0)


def test_malformed_or_oversized_bodies_are_refused(
    client: TestClient, session: Session, staff_headers: dict[str, str]
) -> None:
    malformed = client.post(
        f"{API}/broadcasts",
        content=b'{"subject": ',
        headers={**staff_headers, "content-type": "application/json"},
    )
    assert malformed.status_code == 400
    assert malformed.json()["detail"] == "malformed JSON body"
    # The app's request limit (64 KiB) is below the model's 100,000 characters.
    huge = client.post(
        f"{API}/broadcasts",
        json=broadcast_payload(body_markdown="x" * 100_001),
        headers=staff_headers,
    )
    assert huge.status_code == 413
    assert "too large" in huge.json()["detail"]
    assert _rows(session) == (0, 0)


def test_the_body_is_limited_to_100000_characters() -> None:
    BroadcastIn.model_validate(broadcast_payload(body_markdown="x" * 100_000))
    with pytest.raises(ValidationError, match="body_markdown"):
        BroadcastIn.model_validate(broadcast_payload(body_markdown="x" * 100_001))


# --- GET /campaigns and /campaigns/{id} -------------------------------------------------


def test_list_newest_first_with_a_limit(
    client: TestClient, session: Session, staff_headers: dict[str, str]
) -> None:
    ids = [_draft(session, subject=f"News {n}") for n in range(3)]
    runner.create_digest_campaign(session, start=utcnow() - timedelta(days=7), end=utcnow())
    session.commit()
    response = client.get(API, headers=staff_headers)
    assert response.status_code == 200
    listed = response.json()
    assert [c["kind"] for c in listed] == ["digest", "broadcast", "broadcast", "broadcast"]
    assert [c["id"] for c in listed[1:]] == ids[::-1]
    limited = client.get(API, params={"limit": 2}, headers=staff_headers)
    assert [c["id"] for c in limited.json()] == [listed[0]["id"], ids[2]]


@pytest.mark.parametrize("limit", ["0", "201", "lots"])
def test_a_bad_list_limit_is_422(
    client: TestClient, staff_headers: dict[str, str], limit: str
) -> None:
    response = client.get(API, params={"limit": limit}, headers=staff_headers)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("query.limit:")


def test_get_one_campaign_with_its_progress(
    client: TestClient, session: Session, staff_headers: dict[str, str]
) -> None:
    readers = [make_subscriber(session, topics=("spine-mri",)) for _ in range(4)]
    campaign_id = _draft(session, topic_slugs=["spine-mri"])
    runner.start_campaign(session, campaign_id)
    runner.plan_campaign(units_in(session), campaign_id, config=runner.RunnerConfig())
    started = utcnow() - timedelta(seconds=10)
    session.execute(update(Campaign).values(started_at=started))
    sent = session.scalars(select(Delivery.id).order_by(Delivery.id).limit(2)).all()
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(sent))
        .values(status=DeliveryStatus.SENT, sent_at=utcnow())
    )
    session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == readers[-1].id)
        .values(status=DeliveryStatus.BOUNCED)
    )
    session.commit()

    response = client.get(f"{API}/{campaign_id}", headers=staff_headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "running"
    assert {k: v for k, v in body["counts"].items() if v} == {
        "queued": 1,
        "sent": 2,
        "bounced": 1,
    }
    assert body["counts"]["failed"] == 0 and body["counts"]["suppressed"] == 0
    assert body["total"] == 4
    assert body["rate_per_second"] == pytest.approx(0.2, rel=0.1)
    assert body["eta_seconds"] == pytest.approx(5, rel=0.1)
    listed = client.get(API, headers=staff_headers).json()
    assert listed[0]["counts"] == body["counts"]


@pytest.mark.parametrize(("campaign_id", "status"), [("999999", 404), ("0", 422), ("x", 422)])
def test_get_a_missing_or_malformed_id(
    client: TestClient, staff_headers: dict[str, str], campaign_id: str, status: int
) -> None:
    response = client.get(f"{API}/{campaign_id}", headers=staff_headers)
    assert response.status_code == status
    assert response.json()["detail"]
    if status == 404:
        assert response.json()["detail"] == "no campaign 999999"


# --- GET /{id}/preview ---------------------------------------------------------------


def test_preview_a_broadcast_as_one_subscriber(
    client: TestClient, session: Session, staff_headers: dict[str, str]
) -> None:
    reader = make_subscriber(session, name="Grace")
    campaign_id = _draft(session, subject="Saturday scans")
    eml = client.get(
        f"{API}/{campaign_id}/preview", params={"email": reader.email}, headers=staff_headers
    )
    assert eml.status_code == 200, eml.text
    assert eml.headers["content-type"] == "message/rfc822"
    message = message_from_bytes(eml.content, policy=default_policy)
    assert message["To"] == reader.email
    assert message["Subject"] == "Saturday scans"
    assert "/u/" in message["List-Unsubscribe"]

    html = client.get(
        f"{API}/{campaign_id}/preview",
        params={"email": reader.email, "part": "html"},
        headers=staff_headers,
    )
    assert html.headers["content-type"].startswith("text/html")
    assert "<strong>news</strong>" in html.text and "Grace" in html.text
    text = client.get(
        f"{API}/{campaign_id}/preview",
        params={"email": reader.email, "part": "text"},
        headers=staff_headers,
    )
    assert text.headers["content-type"].startswith("text/plain")
    assert "news" in text.text and "<strong>" not in text.text


def test_preview_refusals(
    client: TestClient, session: Session, staff_headers: dict[str, str]
) -> None:
    reader = make_subscriber(session)
    campaign_id = _draft(session)
    digest = runner.create_digest_campaign(
        session, start=utcnow() - timedelta(days=7), end=utcnow()
    )
    session.commit()

    def preview(cid: int, **params: str) -> Any:
        return client.get(f"{API}/{cid}/preview", params=params, headers=staff_headers)

    nobody = preview(campaign_id, email="nobody@example.org")
    assert nobody.status_code == 404
    assert nobody.json()["detail"] == "no subscriber with address nobody@example.org"
    missing = preview(999999, email=reader.email)
    assert missing.status_code == 404 and missing.json()["detail"] == "no campaign 999999"
    of_digest = preview(digest.id, email=reader.email)
    assert of_digest.status_code == 409
    assert "/api/v1/digest/preview" in of_digest.json()["detail"]
    bad_part = preview(campaign_id, email=reader.email, part="pdf")
    assert bad_part.status_code == 422 and "part" in bad_part.json()["detail"]
    no_email = client.get(f"{API}/{campaign_id}/preview", headers=staff_headers)
    assert no_email.status_code == 422 and "email" in no_email.json()["detail"]


# --- POST /{id}/test-send --------------------------------------------------------------


def test_test_send_goes_to_the_given_addresses_now(
    client: TestClient,
    session: Session,
    settings: Settings,
    smtp_sink: SmtpSink,
    staff_headers: dict[str, str],
    queued: QueuedTasks,
) -> None:
    _use_relay(client, settings, smtp_sink.url)
    campaign_id = _draft(session, subject="Saturday scans")
    before = _rows(session)
    first, second = unique_email("editor"), unique_email("doctor")
    response = client.post(
        f"{API}/{campaign_id}/test-send",
        json={"addresses": [first, second, first]},
        headers=staff_headers,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"sent": [first, second]}

    received = smtp_sink.handler.wait_for(2)
    assert sorted(m.to for m in received) == sorted([first, second])
    for inbox_message in received:
        message = inbox_message.parsed()
        assert message["Subject"] == "[Test] Saturday scans"
        assert message["List-Unsubscribe"].startswith("<https://news.example.org/u/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["X-Envelope-To"] == message["To"]
    assert _rows(session) == before
    assert _status(session, campaign_id) == CampaignStatus.DRAFT
    assert queued.names() == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"addresses": []}, "addresses: List should have at least 1 item"),
        ({"addresses": [f"r{n}@example.org" for n in range(11)]}, "at most 10"),
        ({"addresses": ["not-an-address"]}, "addresses.0"),
        ({"addresses": ["a@example.org\r\nBcc: b@example.org"]}, "line break"),
        ({}, "addresses: Field required"),
        ({"addresses": ["a@example.org"], "cc": ["b@example.org"]}, "cc"),
    ],
)
def test_bad_test_sends_get_422_and_send_nothing(
    client: TestClient,
    session: Session,
    settings: Settings,
    smtp_sink: SmtpSink,
    staff_headers: dict[str, str],
    payload: dict[str, object],
    message: str,
) -> None:
    _use_relay(client, settings, smtp_sink.url)
    campaign_id = _draft(session)
    response = client.post(f"{API}/{campaign_id}/test-send", json=payload, headers=staff_headers)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]
    assert smtp_sink.handler.wait_for(1, timeout=0.2) == []


def test_test_send_refusals_and_a_relay_failure(
    client: TestClient,
    session: Session,
    settings: Settings,
    staff_headers: dict[str, str],
) -> None:
    closed_port = free_port()
    _use_relay(client, settings, f"smtp://127.0.0.1:{closed_port}")
    campaign_id = _draft(session)
    digest = runner.create_digest_campaign(
        session, start=utcnow() - timedelta(days=7), end=utcnow()
    )
    session.commit()
    before = _rows(session)
    body = {"addresses": ["editor@example.org"]}

    down = client.post(f"{API}/{campaign_id}/test-send", json=body, headers=staff_headers)
    assert down.status_code == 502
    assert down.json()["detail"] == (
        f"sending to editor@example.org failed: cannot connect to 127.0.0.1:{closed_port}"
    )
    missing = client.post(f"{API}/999999/test-send", json=body, headers=staff_headers)
    assert missing.status_code == 404 and missing.json()["detail"] == "no campaign 999999"
    of_digest = client.post(f"{API}/{digest.id}/test-send", json=body, headers=staff_headers)
    assert of_digest.status_code == 409 and "digest" in of_digest.json()["detail"]
    assert _rows(session) == before


# --- POST /{id}/schedule ------------------------------------------------------------------


def test_schedule_for_later_holds_the_campaign(
    client: TestClient, session: Session, staff_headers: dict[str, str], queued: QueuedTasks
) -> None:
    campaign_id = _draft(session)
    response = client.post(
        f"{API}/{campaign_id}/schedule",
        json={"send_at": "2036-12-01T09:00:00+01:00"},
        headers=staff_headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "scheduled"
    assert datetime.fromisoformat(response.json()["send_at"]) == datetime(
        2036, 12, 1, 8, tzinfo=UTC
    )
    assert queued.names() == []
    # Scheduled again, to a new time, or to now.
    again = client.post(
        f"{API}/{campaign_id}/schedule",
        json={"send_at": "2037-01-01T00:00:00Z"},
        headers=staff_headers,
    )
    assert again.json()["status"] == "scheduled"
    assert again.json()["send_at"].startswith("2037-01-01T00:00:00")
    now = client.post(
        f"{API}/{campaign_id}/schedule", json={"send_at": None}, headers=staff_headers
    )
    assert now.status_code == 200
    assert now.json()["status"] == "running"  # the stored send_at is used only by a draft
    assert queued.names() == [(runner.PLAN_CAMPAIGN, [campaign_id])]


def test_schedule_without_a_time_or_with_a_past_one_starts_now(
    client: TestClient, session: Session, staff_headers: dict[str, str], queued: QueuedTasks
) -> None:
    first, second = _draft(session), _draft(session)
    response = client.post(f"{API}/{first}/schedule", headers=staff_headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "running"
    assert response.json()["started_at"] is not None
    past = client.post(
        f"{API}/{second}/schedule",
        json={"send_at": "2020-01-01T09:00:00Z"},
        headers=staff_headers,
    )
    assert past.json()["status"] == "running"
    assert queued.names() == [(runner.PLAN_CAMPAIGN, [first]), (runner.PLAN_CAMPAIGN, [second])]


def test_schedule_uses_the_drafts_own_send_at(
    client: TestClient, session: Session, staff_headers: dict[str, str], queued: QueuedTasks
) -> None:
    created = client.post(
        f"{API}/broadcasts",
        json=broadcast_payload(send_at="2036-06-01T09:00:00Z"),
        headers=staff_headers,
    ).json()
    response = client.post(f"{API}/{created['id']}/schedule", headers=staff_headers)
    assert response.json()["status"] == "scheduled"
    assert response.json()["send_at"] == created["send_at"]
    assert queued.names() == []


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"send_at": "2036-12-01T09:00:00"}, 422, "send_at: must include a time zone"),
        ({"send_at": "soon"}, 422, "send_at"),
        ({"when": "2036-12-01T09:00:00Z"}, 422, "when"),
    ],
)
def test_bad_schedules_are_refused_and_change_nothing(
    client: TestClient,
    session: Session,
    staff_headers: dict[str, str],
    queued: QueuedTasks,
    payload: dict[str, object],
    status: int,
    message: str,
) -> None:
    campaign_id = _draft(session)
    response = client.post(f"{API}/{campaign_id}/schedule", json=payload, headers=staff_headers)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert _status(session, campaign_id) == CampaignStatus.DRAFT
    assert queued.names() == []


@pytest.mark.parametrize("when", [None, "2036-12-01T09:00:00Z"])
@pytest.mark.parametrize(
    "status", [CampaignStatus.RUNNING, CampaignStatus.CANCELLED, CampaignStatus.DONE]
)
def test_scheduling_a_started_or_finished_campaign_is_409(
    client: TestClient,
    session: Session,
    staff_headers: dict[str, str],
    queued: QueuedTasks,
    status: CampaignStatus,
    when: str | None,
) -> None:
    campaign_id = _with_status(session, status)
    response = client.post(
        f"{API}/{campaign_id}/schedule", json={"send_at": when}, headers=staff_headers
    )
    assert response.status_code == 409
    verb = "start" if when is None else "schedule"
    assert response.json()["detail"] == f"cannot {verb} campaign {campaign_id}: it is {status}"
    assert _status(session, campaign_id) == status
    assert session.scalar(select(Campaign.send_at).where(Campaign.id == campaign_id)) is None
    assert queued.names() == []
    missing = client.post(f"{API}/999999/schedule", headers=staff_headers)
    assert missing.status_code == 404 and missing.json()["detail"] == "no campaign 999999"


def test_start_due_campaigns_starts_only_scheduled_ones_whose_time_has_come(
    session: Session, queued: QueuedTasks
) -> None:
    now = utcnow()
    due = _draft(session)
    later = _draft(session)
    draft = _draft(session)
    schedule_campaign(session, due, send_at=now + timedelta(minutes=5), now=now)
    schedule_campaign(session, later, send_at=now + timedelta(hours=2), now=now)
    session.commit()
    assert queued.names() == []

    assert start_due_campaigns(session, now + timedelta(minutes=10)) == [due]
    session.commit()
    assert start_due_campaigns(session, now + timedelta(minutes=10)) == []
    session.commit()
    assert _status(session, due) == CampaignStatus.RUNNING
    assert _status(session, later) == CampaignStatus.SCHEDULED
    assert _status(session, draft) == CampaignStatus.DRAFT
    assert queued.names() == [(runner.PLAN_CAMPAIGN, [due])]


# --- POST /{id}/pause | resume | cancel ---------------------------------------------


def test_pause_resume_cancel(
    client: TestClient, session: Session, staff_headers: dict[str, str], queued: QueuedTasks
) -> None:
    campaign_id = _with_status(session, CampaignStatus.RUNNING)
    paused = client.post(f"{API}/{campaign_id}/pause", headers=staff_headers)
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    assert queued.names() == []
    resumed = client.post(f"{API}/{campaign_id}/resume", headers=staff_headers)
    assert resumed.json()["status"] == "running"
    assert queued.names() == [(runner.PLAN_CAMPAIGN, [campaign_id, True])]
    cancelled = client.post(f"{API}/{campaign_id}/cancel", headers=staff_headers)
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    assert _status(session, campaign_id) == CampaignStatus.CANCELLED


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("pause", CampaignStatus.DRAFT),
        ("pause", CampaignStatus.PAUSED),
        ("resume", CampaignStatus.RUNNING),
        ("resume", CampaignStatus.DONE),
        ("cancel", CampaignStatus.CANCELLED),
        ("cancel", CampaignStatus.DONE),
    ],
)
def test_steering_from_the_wrong_state_is_409_and_changes_nothing(
    client: TestClient,
    session: Session,
    staff_headers: dict[str, str],
    queued: QueuedTasks,
    action: str,
    status: CampaignStatus,
) -> None:
    campaign_id = _with_status(session, status)
    before = _rows(session)
    response = client.post(f"{API}/{campaign_id}/{action}", headers=staff_headers)
    assert response.status_code == 409
    assert response.json()["detail"] == f"cannot {action} campaign {campaign_id}: it is {status}"
    assert _status(session, campaign_id) == status
    assert _rows(session) == before
    assert queued.names() == []


@pytest.mark.parametrize("action", ["pause", "resume", "cancel"])
def test_steering_a_missing_campaign_is_404(
    client: TestClient, staff_headers: dict[str, str], action: str
) -> None:
    response = client.post(f"{API}/999999/{action}", headers=staff_headers)
    assert response.status_code == 404
    assert response.json()["detail"] == "no campaign 999999"
    assert client.post(f"{API}/x/{action}", headers=staff_headers).status_code == 422


# --- OpenAPI ----------------------------------------------------------------------------


def test_openapi_documents_every_campaign_endpoint(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    expected = {
        ("post", "/api/v1/campaigns/broadcasts"): {"201", "401", "422", "400"},
        ("get", "/api/v1/campaigns"): {"200", "401", "422"},
        ("get", "/api/v1/campaigns/{campaign_id}"): {"200", "401", "404", "422"},
        ("get", "/api/v1/campaigns/{campaign_id}/preview"): {"200", "401", "404", "409", "422"},
        ("post", "/api/v1/campaigns/{campaign_id}/test-send"): {
            "200",
            "401",
            "404",
            "409",
            "422",
            "502",
        },
        ("post", "/api/v1/campaigns/{campaign_id}/schedule"): {"200", "401", "404", "409", "422"},
        ("post", "/api/v1/campaigns/{campaign_id}/pause"): {"200", "401", "404", "409", "422"},
        ("post", "/api/v1/campaigns/{campaign_id}/resume"): {"200", "401", "404", "409", "422"},
        ("post", "/api/v1/campaigns/{campaign_id}/cancel"): {"200", "401", "404", "409", "422"},
    }
    for (method, path), codes in expected.items():
        operation = paths[path][method]
        assert codes <= set(operation["responses"]), (method, path)
        assert operation["summary"] and operation["description"], (method, path)
        for code in codes & {"404", "409", "502"}:
            schema = operation["responses"][code]["content"]["application/json"]["schema"]
            assert schema["required"] == ["detail"], (method, path, code)
        assert {"HTTPBearer": []} in operation["security"], (method, path)

    def body_schema(path: str) -> str:
        content = paths[path]["post"]["requestBody"]["content"]["application/json"]
        return str(content["schema"])

    assert "BroadcastIn" in body_schema("/api/v1/campaigns/broadcasts")
    assert "TestSendIn" in body_schema("/api/v1/campaigns/{campaign_id}/test-send")
    assert "ScheduleIn" in body_schema("/api/v1/campaigns/{campaign_id}/schedule")
    schemas = spec["components"]["schemas"]
    assert schemas["BroadcastIn"]["additionalProperties"] is False
    assert {"subject", "body_markdown"} <= set(schemas["BroadcastIn"]["required"])
    assert {"topics_any", "topics_all", "timezones"} <= set(schemas["SegmentIn"]["properties"])
    assert schemas["TestSendIn"]["properties"]["addresses"]["maxItems"] == 10
    assert {"counts", "total", "rate_per_second", "eta_seconds"} <= set(
        schemas["CampaignOut"]["properties"]
    )


def test_segment_preview_counts_and_samples_without_sending(
    client: TestClient, session: Session, queued: QueuedTasks
) -> None:
    headers = {"authorization": f"Bearer {make_staff_token(session)}"}
    for topics in (("spine-mri",), ("spine-mri", "headaches"), ("neck-pain",)):
        make_subscriber(session, topics=topics)
    session.commit()
    response = client.post(
        "/api/v1/segments/preview",
        json={"topics_any": ["spine-mri"]},
        params={"sample_size": 1},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 2 and len(response.json()["sample"]) == 1
    assert queued.names() == []
    unknown = client.post(
        "/api/v1/segments/preview", json={"topics_all": ["astrology"]}, headers=headers
    )
    assert unknown.status_code == 422 and "astrology" in unknown.json()["detail"]
    bad = client.post(
        "/api/v1/segments/preview", json={"timezones": ["Mars/Base"]}, headers=headers
    )
    assert bad.status_code == 422
    assert client.post("/api/v1/segments/preview", json={}).status_code == 401


def test_scheduled_campaigns_are_started_by_beat(session: Session) -> None:
    import scheduler

    entry = scheduler.app.conf.beat_schedule["start-due-campaigns"]
    assert entry["task"] == "newsletter.start_due_campaigns"
    from newsletter import tasks

    assert tasks.start_due_campaigns.name == entry["task"]
