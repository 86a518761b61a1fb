"""The public JSON API: topics and signups. Errors are 4xx with a readable message."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from newsletter.content.service import list_topics
from newsletter.errors import DomainError
from newsletter.subscribers import service
from newsletter.subscribers.schemas import SubscriptionIn, SubscriptionOut, TopicOut
from newsletter.web.deps import SessionDep, SettingsDep
from newsletter.web.public import client_consent

router = APIRouter(prefix="/api/v1", tags=["subscribers"])

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed JSON"},
    413: {"description": "Request body too large"},
    422: {"description": "A field is missing, of the wrong type, too long, or unknown"},
}


@router.get("/topics", response_model=list[TopicOut])
def get_topics(session: SessionDep) -> list[TopicOut]:
    """The topics a subscriber can choose from."""
    return [
        TopicOut(slug=topic.slug, name=topic.name, description=topic.description)
        for topic in list_topics(session)
    ]


@router.post(
    "/subscriptions",
    status_code=202,
    response_model=SubscriptionOut,
    responses=ERROR_RESPONSES,
)
def create_subscription(
    payload: SubscriptionIn, request: Request, session: SessionDep, settings: SettingsDep
) -> SubscriptionOut | JSONResponse:
    """Start a double opt-in; the answer is the same whether or not the address is known."""
    timezone = payload.timezone or settings.default_timezone
    try:
        service.signup(
            session,
            email=payload.email,
            name=payload.name,
            topic_slugs=payload.topics,
            timezone=timezone,
            consent=client_consent(request, source="api", settings=settings),
            resend_after_seconds=settings.resend_confirmation_after_seconds,
        )
    except DomainError as e:
        session.rollback()
        return JSONResponse({"detail": str(e), "errors": [f"topics: {e}"]}, status_code=422)
    return SubscriptionOut(
        email=payload.email,
        name=payload.name,
        topics=list(dict.fromkeys(payload.topics)),
        timezone=timezone,
    )
