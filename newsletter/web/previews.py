"""Digest previews: exactly the message one subscriber would receive this week."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from newsletter.campaigns.digest import preview_digest
from newsletter.db import utcnow
from newsletter.delivery.mime import OutgoingMessage
from newsletter.errors import DomainError
from newsletter.web.deps import SessionDep, SettingsDep, SignerDep, render_page
from newsletter.web.staff_auth import UNAUTHORIZED, StaffDep

staff_router = APIRouter(prefix="/api/v1", tags=["staff"], responses=UNAUTHORIZED)
dev_router = APIRouter(prefix="/dev", include_in_schema=False)

Email = Annotated[str, Query(max_length=254, description="The subscriber's address")]


def message_part(message: OutgoingMessage, subtype: str) -> str:
    parsed = message_from_bytes(message.data, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    part = parsed.get_body(preferencelist=(subtype,))
    content = part.get_content() if isinstance(part, EmailMessage) else ""
    return content if isinstance(content, str) else ""


@staff_router.get(
    "/digest/preview",
    responses={
        200: {"content": {"message/rfc822": {}, "text/html": {}, "text/plain": {}}},
        404: {"description": "No such subscriber, or nothing new on their topics"},
    },
)
def get_digest_preview(
    email: Email,
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    staff: StaffDep,
    part: Literal["eml", "html", "text"] = "eml",
) -> Response:
    """This week's digest for one subscriber, as .eml or one of its parts."""
    try:
        message = preview_digest(session, email, now=utcnow(), settings=settings, signer=signer)
    except DomainError as e:
        return JSONResponse({"detail": str(e)}, status_code=404)
    if part == "html":
        return HTMLResponse(message_part(message, "html"))
    if part == "text":
        return PlainTextResponse(message_part(message, "plain"))
    return Response(message.data, media_type="message/rfc822")


@dev_router.get("/digest-preview")
def dev_digest_preview(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    signer: SignerDep,
    email: Email = "",
) -> HTMLResponse:
    """The embedded mode's preview page: pick a subscriber, see their digest."""
    context: dict[str, object] = {"email": email, "error": "", "html": "", "text": ""}
    if email:
        try:
            message = preview_digest(session, email, now=utcnow(), settings=settings, signer=signer)
            context.update(html=message_part(message, "html"), text=message_part(message, "plain"))
        except DomainError as e:
            context["error"] = str(e)
    return render_page(
        request, "digest_preview.html", context, status_code=404 if context["error"] else 200
    )
