"""Builds RFC 5322 messages as bytes: multipart/alternative, UTF-8, safe headers.

The bytes are written out directly rather than through `EmailMessage.as_bytes()`:
that path costs milliseconds a message and folds a long List-Unsubscribe into
RFC 2047 encoded-words, which mailbox providers do not decode in that header.
"""

from __future__ import annotations

import quopri
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate, make_msgid

CRLF = "\r\n"


class HeaderInjectionError(ValueError):
    """A header value carried a line break: refused instead of sent."""


@dataclass(frozen=True)
class OutgoingMessage:
    """One message ready for the wire: the envelope and the bytes."""

    mail_from: str
    rcpt_to: str
    data: bytes
    message_id: str


def _check(value: str) -> str:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise HeaderInjectionError("header value contains a line break")
    return value


def encode_header_text(value: str) -> str:
    """A header value as ASCII, using RFC 2047 only when the text needs it."""
    _check(value)
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(maxlinelen=76, linesep=CRLF)


def format_address(display_name: str, address: str) -> str:
    _check(display_name)
    _check(address)
    return formataddr((display_name, address), charset="utf-8")


def fold_url_list(urls: list[str]) -> str:
    """`<a>, <b>` folded between entries, never inside one (RFC 2369 and 8058)."""
    for url in urls:
        _check(url)
        if not url.isascii() or any(ch in url for ch in "<> ,"):
            raise HeaderInjectionError(f"not a plain URL for List-Unsubscribe: {url!r}")
    return ("," + CRLF + " ").join(f"<{url}>" for url in urls)


def _quoted_printable(text: str) -> str:
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    encoded = quopri.encodestring(normalised.encode("utf-8")).decode("ascii")
    return encoded.replace("\n", CRLF)


def build_message(
    *,
    from_name: str,
    from_address: str,
    to_address: str,
    subject: str,
    text: str,
    html: str,
    domain: str,
    extra_headers: Mapping[str, str] | None = None,
) -> OutgoingMessage:
    """A multipart/alternative message (text first, then HTML) as bytes."""
    message_id = make_msgid(idstring=secrets.token_hex(6), domain=domain)
    boundary = "=_" + secrets.token_hex(16)
    headers = [
        ("From", format_address(from_name, from_address)),
        ("To", format_address("", to_address)),
        ("Subject", encode_header_text(subject)),
        ("Date", formatdate(usegmt=True)),
        ("Message-ID", message_id),
        ("MIME-Version", "1.0"),
    ]
    for name, value in (extra_headers or {}).items():
        _check(name)
        headers.append((name, value if name.startswith("List-") else encode_header_text(value)))
    headers.append(("Content-Type", f'multipart/alternative; boundary="{boundary}"'))
    head = CRLF.join(f"{name}: {value}" for name, value in headers)
    parts = []
    for subtype, body in (("plain", text), ("html", html)):
        parts.append(
            f"--{boundary}{CRLF}"
            f"Content-Type: text/{subtype}; charset=utf-8{CRLF}"
            f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
            f"{_quoted_printable(body)}{CRLF}"
        )
    data = head + CRLF + CRLF + "".join(parts) + f"--{boundary}--{CRLF}"
    return OutgoingMessage(
        mail_from=from_address,
        rcpt_to=to_address,
        data=data.encode("ascii"),
        message_id=message_id,
    )
