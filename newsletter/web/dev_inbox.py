"""The dev inbox in the browser: /dev/inbox lists what the embedded SMTP server caught."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from newsletter.delivery.dev_inbox import InboxMessage, get_message, list_messages
from newsletter.web.deps import SettingsDep, render_page

router = APIRouter(prefix="/dev", include_in_schema=False)

# Mail HTML is untrusted: no scripts, no same-origin access, but links may open.
_SANDBOX_POLICY = (
    "sandbox allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation;"
    " default-src 'none'; img-src * data:; style-src 'unsafe-inline'"
)


def _folder(settings: SettingsDep) -> Path:
    return settings.inbox_dir


def _find(settings: SettingsDep, message_id: str) -> InboxMessage:
    message = get_message(_folder(settings), message_id)
    if message is None:
        raise HTTPException(404, "no such message in the dev inbox")
    return message


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or not isinstance(part, EmailMessage):
        return ""
    content = part.get_content()
    return content if isinstance(content, str) else ""


@router.get("/inbox.json")
def inbox_json(settings: SettingsDep) -> list[dict[str, str]]:
    """Every caught message, newest first, for tools and tests."""
    return [message.as_json() for message in list_messages(_folder(settings))]


@router.get("/inbox")
def inbox(request: Request, settings: SettingsDep) -> HTMLResponse:
    return render_page(request, "dev_inbox.html", {"messages": list_messages(_folder(settings))})


@router.get("/inbox/{message_id}")
def inbox_message(request: Request, message_id: str, settings: SettingsDep) -> HTMLResponse:
    message = _find(settings, message_id)
    parsed = message.parsed()
    headers = [(name, str(value)) for name, value in parsed.items()]
    return render_page(
        request,
        "dev_inbox_message.html",
        {"message": message, "headers": headers, "text": _part(parsed, "plain")},
    )


@router.get("/inbox/{message_id}/html")
def inbox_message_html(message_id: str, settings: SettingsDep) -> Response:
    """The HTML part alone, for the viewer's sandboxed iframe."""
    html = _part(_find(settings, message_id).parsed(), "html")
    return HTMLResponse(
        html,
        headers={"Content-Security-Policy": _SANDBOX_POLICY},
    )


@router.get("/inbox/{message_id}/text")
def inbox_message_text(message_id: str, settings: SettingsDep) -> PlainTextResponse:
    return PlainTextResponse(_part(_find(settings, message_id).parsed(), "plain"))


@router.get("/inbox/{message_id}/raw")
def inbox_message_raw(message_id: str, settings: SettingsDep) -> PlainTextResponse:
    """The message exactly as received, headers included."""
    return PlainTextResponse(_find(settings, message_id).path.read_text("utf-8", "replace"))
