"""The staff JSON API for campaigns: broadcasts drafted, previewed, tested, scheduled, steered.

Every error is a 4xx JSON `{"detail": ...}` (502 when a test send's relay fails)
and the request's unit of work is rolled back, so a refused request writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.campaigns.broadcast import BroadcastEdition
from newsletter.campaigns.digest import recipient_of
from newsletter.campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    DeliveryStatus,
)
from newsletter.campaigns.runner import (
    CampaignError,
    Progress,
    campaigns_progress,
    cancel_campaign,
    create_broadcast_campaign,
    edition_for,
    pause_campaign,
    resume_campaign,
)
from newsletter.campaigns.schedule import schedule_campaign
from newsletter.campaigns.schemas import (
    BroadcastIn,
    CampaignOut,
    ScheduleIn,
    TestSendIn,
    TestSendOut,
)
from newsletter.campaigns.segments import SegmentIn, preview_segment
from newsletter.content.service import UnknownTopicsError
from newsletter.db import utcnow
from newsletter.delivery.sender import DeliveryError, make_sender
from newsletter.rendering.personal import Recipient
from newsletter.subscribers.service import get_subscriber_by_email
from newsletter.web.api import ERROR_RESPONSES
from newsletter.web.deps import SessionDep, SettingsDep, SignerDep
from newsletter.web.previews import message_part
from newsletter.web.staff_auth import UNAUTHORIZED, StaffDep

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"], responses=UNAUTHORIZED)

Detail = dict[int | str, dict[str, Any]]


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"detail": {"type": "string"}},
                    "required": ["detail"],
                }
            }
        },
    }


NOT_FOUND: Detail = {404: _error("No campaign with this id")}
WRONG_STATE: Detail = {409: _error("The campaign's status does not allow this")}
BAD_QUERY: Detail = {422: _error("A parameter is missing or invalid")}

CampaignId = Annotated[int, Path(ge=1, description="The campaign's id")]


def _refused(status_code: int, detail: str, session: Session) -> JSONResponse:
    """A JSON error, after taking back anything the request had begun to write."""
    session.rollback()
    return JSONResponse({"detail": detail}, status_code=status_code)


def _out(campaign: Campaign, progress: Progress) -> CampaignOut:
    now = utcnow()
    return CampaignOut(
        id=campaign.id,
        kind=str(campaign.kind),
        name=campaign.name,
        status=str(campaign.status),
        subject=campaign.subject,
        audience=campaign.audience,
        send_at=campaign.send_at,
        created_at=campaign.created_at,
        started_at=campaign.started_at,
        finished_at=campaign.finished_at,
        counts={str(status): progress.counts.get(status, 0) for status in DeliveryStatus},
        total=progress.total,
        rate_per_second=round(progress.rate_per_second(now), 3),
        eta_seconds=progress.eta_seconds(now),
    )


def _answer(session: Session, campaign_id: int, status_code: int = 200) -> JSONResponse:
    """The campaign as it now is in the database, as JSON."""
    session.flush()
    campaign = session.get(Campaign, campaign_id, populate_existing=True)
    assert campaign is not None
    body = _out(campaign, campaigns_progress(session, [campaign])[campaign.id])
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code)


@router.post(
    "/broadcasts",
    status_code=201,
    response_model=CampaignOut,
    responses={
        **ERROR_RESPONSES,
        422: _error("A field is missing, too long, not one line, or names an unknown topic"),
    },
)
def create_broadcast(payload: BroadcastIn, session: SessionDep, staff: StaffDep) -> JSONResponse:
    """Draft a broadcast to a segment (everyone active when empty)."""
    if payload.send_at is not None and payload.send_at <= utcnow():
        return _refused(422, "send_at: must be in the future", session)
    try:
        campaign = create_broadcast_campaign(
            session,
            subject=payload.subject,
            body_markdown=payload.body_markdown,
            segment=payload.audience,
            name=payload.name,
        )
    except UnknownTopicsError as e:
        return _refused(422, f"audience: {e}", session)
    campaign.send_at = payload.send_at
    return _answer(session, campaign.id, status_code=201)


@router.get("", response_model=list[CampaignOut], responses=BAD_QUERY)
def list_campaigns(
    session: SessionDep,
    staff: StaffDep,
    limit: Annotated[int, Query(ge=1, le=200, description="How many, newest first")] = 50,
) -> list[CampaignOut]:
    """The latest campaigns, newest first, each with its progress."""
    campaigns = session.scalars(select(Campaign).order_by(Campaign.id.desc()).limit(limit)).all()
    progress = campaigns_progress(session, campaigns)
    return [_out(campaign, progress[campaign.id]) for campaign in campaigns]


@router.get("/{campaign_id}", response_model=CampaignOut, responses={**NOT_FOUND, **BAD_QUERY})
def get_campaign(campaign_id: CampaignId, session: SessionDep, staff: StaffDep) -> JSONResponse:
    """One campaign with its progress: counts by status, send rate and time left."""
    if session.get(Campaign, campaign_id) is None:
        return _refused(404, f"no campaign {campaign_id}", session)
    return _answer(session, campaign_id)


def _broadcast(session: Session, campaign_id: int) -> Campaign | JSONResponse:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        return _refused(404, f"no campaign {campaign_id}", session)
    if campaign.kind != CampaignKind.BROADCAST:
        return _refused(
            409,
            f"campaign {campaign_id} is a {campaign.kind}; preview digests at "
            "/api/v1/digest/preview",
            session,
        )
    return campaign


@router.get(
    "/{campaign_id}/preview",
    responses={
        200: {"content": {"message/rfc822": {}, "text/html": {}, "text/plain": {}}},
        404: _error("No such campaign, or no subscriber with this address"),
        409: _error("The campaign is a digest: use /api/v1/digest/preview"),
        **BAD_QUERY,
    },
)
def preview_campaign(
    campaign_id: CampaignId,
    email: Annotated[str, Query(max_length=254, description="The subscriber's address")],
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    staff: StaffDep,
    part: Literal["eml", "html", "text"] = "eml",
) -> Response:
    """The broadcast exactly as one subscriber would receive it, as .eml or one part."""
    campaign = _broadcast(session, campaign_id)
    if isinstance(campaign, JSONResponse):
        return campaign
    subscriber = get_subscriber_by_email(session, email)
    if subscriber is None:
        return _refused(404, f"no subscriber with address {email}", session)
    edition = edition_for(session, campaign, settings=settings)
    message = edition.message_for(recipient_of(subscriber), signer=signer)
    if message is None:
        return _refused(404, f"nothing to send to {email}", session)
    if part == "html":
        return HTMLResponse(message_part(message, "html"))
    if part == "text":
        return PlainTextResponse(message_part(message, "plain"))
    return Response(message.data, media_type="message/rfc822")


@router.post(
    "/{campaign_id}/test-send",
    response_model=TestSendOut,
    responses={
        **ERROR_RESPONSES,
        **NOT_FOUND,
        409: _error("The campaign is a digest: only broadcasts can be test-sent"),
        422: _error("No address, more than 10, or one that is not a valid email address"),
        502: _error("The mail relay refused or failed; the detail says which address"),
    },
)
def test_send_campaign(
    campaign_id: CampaignId,
    payload: TestSendIn,
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    staff: StaffDep,
) -> TestSendOut | JSONResponse:
    """Send the broadcast now to a few addresses, its subject marked "[Test] "."""
    campaign = _broadcast(session, campaign_id)
    if isinstance(campaign, JSONResponse):
        return campaign
    # Not the cached edition: the subject differs, and a test must show the latest text.
    edition = BroadcastEdition(
        subject=f"[Test] {campaign.subject}",
        body_markdown=campaign.body_markdown,
        settings=settings,
        campaign_id=f"campaign-{campaign.id}-test",
    )
    addresses = list(dict.fromkeys(payload.addresses))
    sent: list[str] = []
    sender = make_sender(settings)
    try:
        for address in addresses:
            # Id 0 is nobody: its links match no subscriber, so a click changes nothing.
            message = edition.message_for(Recipient(0, address, ""), signer=signer)
            if message is None:
                continue
            try:
                sender.send(message)
            except DeliveryError as e:
                done = f" (already sent to {', '.join(sent)})" if sent else ""
                return JSONResponse(
                    {"detail": f"sending to {address} failed: {e}{done}", "sent": sent},
                    status_code=502,
                )
            sent.append(address)
    finally:
        sender.close()
    return TestSendOut(sent=sent)


@router.post(
    "/{campaign_id}/schedule",
    response_model=CampaignOut,
    responses={**ERROR_RESPONSES, **NOT_FOUND, **WRONG_STATE},
)
def schedule_campaign_route(
    campaign_id: CampaignId,
    session: SessionDep,
    staff: StaffDep,
    payload: Annotated[ScheduleIn | None, Body()] = None,
) -> JSONResponse:
    """Hold the campaign until a future `send_at`, or start sending now.

    Without `send_at`, a draft keeps the time it was drafted with; a campaign
    already scheduled, or a draft without one, starts now. A past time starts now.
    """
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        return _refused(404, f"no campaign {campaign_id}", session)
    send_at = payload.send_at if payload is not None else None
    if send_at is None and campaign.status == CampaignStatus.DRAFT:
        send_at = campaign.send_at  # the time given when it was drafted, if any
    try:
        schedule_campaign(session, campaign_id, send_at=send_at, now=utcnow())
    except CampaignError as e:
        return _refused(409, str(e), session)
    return _answer(session, campaign_id)


def _steer(
    action: Callable[[Session, int], None], session: Session, campaign_id: int
) -> JSONResponse:
    if session.get(Campaign, campaign_id) is None:
        return _refused(404, f"no campaign {campaign_id}", session)
    try:
        action(session, campaign_id)
    except CampaignError as e:
        return _refused(409, str(e), session)
    return _answer(session, campaign_id)


STEER_RESPONSES: Detail = {**NOT_FOUND, **WRONG_STATE, **BAD_QUERY}


@router.post("/{campaign_id}/pause", response_model=CampaignOut, responses=STEER_RESPONSES)
def pause_campaign_route(
    campaign_id: CampaignId, session: SessionDep, staff: StaffDep
) -> JSONResponse:
    """Stop sending a running campaign; resume carries on where it stopped."""
    return _steer(pause_campaign, session, campaign_id)


@router.post("/{campaign_id}/resume", response_model=CampaignOut, responses=STEER_RESPONSES)
def resume_campaign_route(
    campaign_id: CampaignId, session: SessionDep, staff: StaffDep
) -> JSONResponse:
    """Carry on sending a paused campaign."""
    return _steer(resume_campaign, session, campaign_id)


@router.post("/{campaign_id}/cancel", response_model=CampaignOut, responses=STEER_RESPONSES)
def cancel_campaign_route(
    campaign_id: CampaignId, session: SessionDep, staff: StaffDep
) -> JSONResponse:
    """Stop a campaign for good: nothing more is sent."""
    return _steer(cancel_campaign, session, campaign_id)


segments_router = APIRouter(prefix="/api/v1/segments", tags=["campaigns"], responses=UNAUTHORIZED)


class SegmentPreviewOut(BaseModel):
    count: int
    sample: list[dict[str, str]]


@segments_router.post(
    "/preview",
    response_model=SegmentPreviewOut,
    responses={**ERROR_RESPONSES, 422: _error("A filter is malformed or names an unknown topic")},
)
def preview_segment_route(
    segment: SegmentIn,
    session: SessionDep,
    staff: StaffDep,
    sample_size: Annotated[int, Query(ge=0, le=100)] = 10,
) -> JSONResponse:
    """How many subscribers a segment matches, and a sample of them; nothing is sent."""
    try:
        preview = preview_segment(session, segment, sample_size=sample_size)
    except UnknownTopicsError as e:
        return _refused(422, str(e), session)
    return JSONResponse(SegmentPreviewOut(count=preview.count, sample=preview.sample).model_dump())
