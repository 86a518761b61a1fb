"""Public pages: signup, confirm, preferences and RFC 8058 one-click unsubscribe."""

from __future__ import annotations

import html
from typing import Any
from zoneinfo import available_timezones

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from newsletter.config import Settings
from newsletter.content.service import list_topics
from newsletter.errors import DomainError
from newsletter.subscribers import service
from newsletter.subscribers.models import Subscriber, SubscriberStatus
from newsletter.subscribers.schemas import (
    PreferencesIn,
    SubscriptionIn,
    first_error_messages,
    is_known_timezone,
    normalise_email,
)
from newsletter.subscribers.tokens import ExpiredTokenError, InvalidTokenError, TokenSigner
from newsletter.web.deps import (
    PageError,
    SessionDep,
    SettingsDep,
    SignerDep,
    message_page,
    render_fragment,
    render_page,
)
from newsletter.web.forms import FormError, field, field_list, read_form

router = APIRouter(include_in_schema=False)

_TIMEZONES = sorted(available_timezones())
_EMPTY_SIGNUP: dict[str, Any] = {"email": "", "name": "", "topics": [], "timezone": ""}
_CHECK_INBOX = (
    "We sent an email to the address you gave. Open the link in it to confirm your "
    "subscription; until then you will not receive the newsletter."
)


async def _read_form_or_page(request: Request) -> FormData:
    try:
        return await read_form(request)
    except FormError as e:
        raise PageError(
            message_page(request, "We could not read that request", str(e), status_code=400)
        ) from e


def client_consent(request: Request, *, source: str, settings: Settings) -> service.ConsentInfo:
    """Who accepted the consent text, as far as the request tells."""
    return service.ConsentInfo(
        source=source,
        text_version=settings.consent_text_version,
        ip_address=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
    )


def _signup_page(
    request: Request, session: Session, *, form: dict[str, Any], errors: list[str], status: int
) -> HTMLResponse:
    return render_page(
        request,
        "signup.html",
        {"topics": list_topics(session), "form": form, "errors": errors},
        status_code=status,
    )


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/subscribe", status_code=303)


@router.get("/healthz")
def healthz() -> PlainTextResponse:
    return PlainTextResponse("ok")


@router.get("/subscribe")
def show_signup(request: Request, session: SessionDep) -> HTMLResponse:
    return _signup_page(request, session, form=_EMPTY_SIGNUP, errors=[], status=200)


@router.post("/subscribe")
async def submit_signup(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The signup form: validates like the API, re-shows the form with messages on error."""
    form = await _read_form_or_page(request)
    values: dict[str, Any] = {
        "email": field(form, "email"),
        "name": field(form, "name"),
        "topics": field_list(form, "topics"),
        "timezone": field(form, "timezone"),
    }
    # The time zone comes from a line of JavaScript; without it (or with a value an
    # old browser made up) the publisher's default applies instead of an error.
    timezone = values["timezone"] if is_known_timezone(values["timezone"]) else None
    try:
        signup = SubscriptionIn(**{**values, "timezone": timezone})
        result = service.signup(
            session,
            email=signup.email,
            name=signup.name,
            topic_slugs=signup.topics,
            timezone=signup.timezone or settings.default_timezone,
            consent=client_consent(request, source="form", settings=settings),
            resend_after_seconds=settings.resend_confirmation_after_seconds,
        )
    except ValidationError as e:
        errors = first_error_messages(e)
        return _signup_page(request, session, form=values, errors=errors, status=422)
    except DomainError as e:
        return _signup_page(request, session, form=values, errors=[str(e)], status=422)
    del result  # the page must read the same whatever the address's history
    return message_page(request, "Check your inbox", _CHECK_INBOX)


@router.get("/embed")
def embedded_signup(request: Request, session: SessionDep) -> HTMLResponse:
    """A compact signup form for an iframe on the publisher's site."""
    return render_page(
        request, "embed.html", {"topics": list_topics(session), "form": _EMPTY_SIGNUP, "errors": []}
    )


@router.get("/embed/snippet")
def embed_snippet(request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    """Copy-and-paste code for the publisher's site."""
    base = settings.effective_base_url
    form_html = render_fragment(
        request,
        "_signup_form.html",
        {"topics": list_topics(session), "form": _EMPTY_SIGNUP, "errors": []},
    ).strip()
    iframe = (
        f'<iframe src="{html.escape(base)}/embed" title="Newsletter signup" '
        'width="100%" height="620" style="border:0"></iframe>'
    )
    return render_page(
        request, "snippet.html", {"iframe_snippet": iframe, "form_snippet": form_html}
    )


@router.get("/confirm/{token}")
def show_confirm(request: Request, token: str, signer: SignerDep) -> HTMLResponse:
    """Ask for a click rather than confirming on GET: mail scanners prefetch links."""
    try:
        signer.read_confirm_token(token)
    except InvalidTokenError as e:
        return _bad_confirm_link(request, token, e, signer)
    return render_page(request, "confirm.html", {"token": token})


@router.post("/confirm/{token}")
def submit_confirm(
    request: Request, token: str, session: SessionDep, signer: SignerDep
) -> HTMLResponse:
    try:
        outcome, subscriber = service.confirm(session, token, signer)
    except InvalidTokenError as e:
        return _bad_confirm_link(request, token, e, signer)
    preferences = f"{_base(request)}/p/{signer.manage_token(subscriber.id)}"
    heading = (
        "You're subscribed"
        if outcome is service.ConfirmOutcome.CONFIRMED
        else "You're already subscribed"
    )
    return message_page(
        request,
        heading,
        "Thank you for confirming. The weekly digest will arrive on "
        + ", ".join(topic.name for topic in subscriber.topics)
        + ".",
        links=[("Change your preferences", preferences)],
    )


def _bad_confirm_link(
    request: Request, token: str, error: InvalidTokenError, signer: TokenSigner
) -> HTMLResponse:
    if isinstance(error, ExpiredTokenError):
        return message_page(
            request,
            "This link has expired",
            "Confirmation links work for a limited time. We can send you a fresh one.",
            status_code=410,
            resend_token=token,
        )
    return message_page(
        request,
        "This link does not work",
        f"Sorry: {error}. It may have been cut short when it was copied. Enter your "
        "address to get a new confirmation link.",
        status_code=400,
        offer_resend=True,
    )


@router.post("/resend-confirmation")
async def resend_confirmation(
    request: Request, session: SessionDep, settings: SettingsDep, signer: SignerDep
) -> HTMLResponse:
    """A new confirm link, from an expired one or from an address; same answer either way."""
    form = await _read_form_or_page(request)
    subscriber_id: int | None = None
    if token := field(form, "token"):
        try:
            subscriber_id = signer.read_confirm_token_ignoring_age(token).subscriber_id
        except InvalidTokenError as e:
            return message_page(request, "This link does not work", str(e), status_code=400)
    elif address := field(form, "email"):
        try:
            email = normalise_email(address)
        except ValueError as e:
            return message_page(request, "Check the address", str(e), status_code=422)
        subscriber = service.get_subscriber_by_email(session, email)
        subscriber_id = subscriber.id if subscriber else None
    else:
        return message_page(
            request, "Nothing to resend", "Enter your email address.", status_code=400
        )
    if subscriber_id is not None:
        service.resend_confirmation(
            session, subscriber_id, resend_after_seconds=settings.resend_confirmation_after_seconds
        )
    return message_page(
        request,
        "Check your inbox",
        "If that address is waiting for confirmation, a new link is on its way.",
    )


def _manage_subscriber(
    request: Request, token: str, session: Session, signer: TokenSigner
) -> Subscriber:
    """The subscriber a manage link names; a PageError when it is bad or they left."""
    try:
        subscriber_id = signer.read_manage_token(token)
    except InvalidTokenError as e:
        raise PageError(
            message_page(
                request,
                "This link does not work",
                f"Sorry: {e}. Use the link from your most recent email.",
                status_code=400,
            )
        ) from e
    subscriber = service.get_subscriber(session, subscriber_id)
    if subscriber is None or subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        raise PageError(
            message_page(
                request,
                "You're not subscribed",
                "This address receives no newsletter from us.",
                links=[("Sign up again", f"{_base(request)}/subscribe")],
            )
        )
    return subscriber


def _base(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return settings.effective_base_url


def _preferences_page(
    request: Request,
    session: Session,
    token: str,
    subscriber: Subscriber,
    *,
    form: dict[str, Any],
    errors: list[str],
    saved: bool = False,
    status: int = 200,
) -> HTMLResponse:
    return render_page(
        request,
        "preferences.html",
        {
            "token": token,
            "subscriber": subscriber,
            "topics": list_topics(session),
            "timezones": _TIMEZONES,
            "form": form,
            "errors": errors,
            "saved": saved,
        },
        status_code=status,
    )


@router.get("/p/{token}")
def show_preferences(
    request: Request, token: str, session: SessionDep, signer: SignerDep
) -> HTMLResponse:
    subscriber = _manage_subscriber(request, token, session, signer)
    form = {
        "name": subscriber.name,
        "topics": subscriber.topic_slugs,
        "timezone": subscriber.timezone,
        "digest_paused": subscriber.digest_paused,
    }
    return _preferences_page(request, session, token, subscriber, form=form, errors=[])


@router.post("/p/{token}")
async def update_preferences(
    request: Request, token: str, session: SessionDep, signer: SignerDep
) -> HTMLResponse:
    subscriber = _manage_subscriber(request, token, session, signer)
    form = await _read_form_or_page(request)
    values: dict[str, Any] = {
        "name": field(form, "name"),
        "topics": field_list(form, "topics"),
        "timezone": field(form, "timezone"),
        "digest_paused": field(form, "digest_paused") == "on",
    }
    try:
        preferences = PreferencesIn(**values)
        service.update_preferences(
            session,
            subscriber.id,
            name=preferences.name,
            topic_slugs=preferences.topics,
            timezone=preferences.timezone,
            digest_paused=preferences.digest_paused,
        )
    except ValidationError as e:
        errors = first_error_messages(e)
        return _preferences_page(
            request, session, token, subscriber, form=values, errors=errors, status=422
        )
    except DomainError as e:
        return _preferences_page(
            request, session, token, subscriber, form=values, errors=[str(e)], status=422
        )
    return _preferences_page(
        request, session, token, subscriber, form=values, errors=[], saved=True
    )


@router.get("/u/{token}")
def show_unsubscribe(
    request: Request, token: str, session: SessionDep, signer: SignerDep
) -> HTMLResponse:
    """A page with a button: GET never unsubscribes, since scanners follow links."""
    subscriber = _manage_subscriber(request, token, session, signer)
    return render_page(request, "unsubscribe.html", {"token": token, "email": subscriber.email})


@router.post("/u/{token}")
async def one_click_unsubscribe(
    request: Request, token: str, session: SessionDep, signer: SignerDep
) -> HTMLResponse:
    """RFC 8058 one-click unsubscribe: 200 with no redirect, replays included."""
    try:
        subscriber_id = signer.read_manage_token(token)
    except InvalidTokenError as e:
        return message_page(request, "This link does not work", str(e), status_code=400)
    form = await _read_form_or_page(request)
    if field(form, "List-Unsubscribe") != "One-Click":
        return message_page(
            request,
            "We could not read that request",
            "An unsubscribe request must carry List-Unsubscribe=One-Click.",
            status_code=400,
        )
    service.unsubscribe(session, subscriber_id)
    return message_page(
        request,
        "You're unsubscribed",
        "You will receive no more newsletters from us. We're sorry to see you go.",
        links=[("Changed your mind? Sign up again", f"{_base(request)}/subscribe")],
    )
