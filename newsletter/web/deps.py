"""Request-scoped pieces shared by every router: settings, the session, page rendering."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker

from newsletter.config import Settings
from newsletter.db import unit_of_work
from newsletter.subscribers.tokens import TokenSigner, signer_for

pages = Jinja2Templates(directory=Path(__file__).parent / "templates")

CONSENT_TEXT = (
    "By subscribing you agree to receive our weekly newsletter by email. We keep your "
    "address, chosen topics and the time and place of this signup as a record of your "
    "consent, and never share them. Every email has a one-click unsubscribe link."
)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One unit of work per request: commit if the handler returns, roll back if it raises."""
    factory: sessionmaker[Session] = request.app.state.session_factory
    with unit_of_work(factory) as session:
        yield session


def get_signer(settings: Annotated[Settings, Depends(get_settings)]) -> TokenSigner:
    return signer_for(settings.effective_secret_key, settings.confirm_token_max_age_seconds)


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
SignerDep = Annotated[TokenSigner, Depends(get_signer)]


def _page_context(request: Request, context: dict[str, Any]) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    return {
        "publisher_name": settings.publisher_name,
        "publisher_address": settings.publisher_address,
        "base_url": settings.effective_base_url,
        "consent_text": CONSENT_TEXT,
        **context,
    }


def render_page(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    """A server-rendered page with the publisher's details filled in."""
    return pages.TemplateResponse(
        request, template, _page_context(request, context), status_code=status_code
    )


def render_fragment(request: Request, template: str, context: dict[str, Any]) -> str:
    """A template rendered to a string, e.g. markup for the publisher to copy."""
    return pages.get_template(template).render(_page_context(request, context))


def message_page(
    request: Request,
    heading: str,
    *paragraphs: str,
    status_code: int = 200,
    **extra: Any,
) -> HTMLResponse:
    """A simple page that tells the reader what happened and what they can do next."""
    return render_page(
        request,
        "message.html",
        {"heading": heading, "paragraphs": paragraphs, **extra},
        status_code=status_code,
    )


class PageError(Exception):
    """Raised by a handler to answer with a ready page (a bad link, an unreadable form)."""

    def __init__(self, response: HTMLResponse) -> None:
        super().__init__(response.status_code)
        self.response = response
