"""Builds RFC 5322 messages as bytes: multipart/alternative, UTF-8, safe headers.

The bytes are written out directly rather than through `EmailMessage.as_bytes()`:
that path costs milliseconds a message and folds a long List-Unsubscribe into
RFC 2047 encoded-words, which mailbox providers do not decode in that header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.header import Header
from email.utils import formataddr, formatdate
from typing import Any

from newsletter.delivery.dkim import relaxed_lines

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
    # DKIM bh= of the body, when the template could compute it cheaply.
    body_hash: str | None = None


_date_cache: tuple[int, str] = (0, "")


def _date_now() -> str:
    """The Date header value, formatted once per second rather than per message."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


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


# A field that differs per recipient is written into the rendered body as a
# marker; the variant is rendered and inlined once, then each recipient's
# message is the pre-encoded chunks joined around their own values.
_FIELD = re.compile(r"%%NL_([A-Z_]+)%%")


def field_marker(name: str) -> str:
    """The placeholder for the per-recipient field `name` in a rendered body."""
    return f"%%NL_{name.upper()}%%"


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends, closed by a soft line break.

    The soft break lets independently encoded chunks be joined without any line
    growing past 76 characters, and decodes to nothing.
    """
    normalised = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(normalised).replace(b"\n", b"\r\n") + b"=\r\n"


@dataclass(frozen=True)
class _Field:
    name: str
    escape_html: bool


def _chunks(body: str, *, escape_html: bool) -> list[bytes | _Field]:
    chunks: list[bytes | _Field] = []
    for index, piece in enumerate(_FIELD.split(body)):
        if index % 2:
            chunks.append(_Field(piece.lower(), escape_html))
        elif piece:
            chunks.append(_qp(piece))
    return chunks


@dataclass(frozen=True)
class MessageTemplate:
    """One variant's message, encoded once, with holes for each recipient's fields."""

    mail_from: str
    domain: str
    head: bytes
    body: tuple[bytes | _Field, ...]
    field_names: frozenset[str]
    field_positions: tuple[int, ...]
    # The body's DKIM relaxed canonicalisation, done once: the SHA-256 state of
    # the part before the first field, and the canonical pieces after it.
    # Every chunk ends at a CRLF, and relaxed canonicalisation works line by line.
    body_prefix_hash: Any = field(repr=False, compare=False, default=None)
    canonical_rest: tuple[bytes | _Field, ...] = field(repr=False, compare=False, default=())

    def render(
        self,
        *,
        to_address: str,
        fields: Mapping[str, str] | None = None,
        list_unsubscribe: Sequence[str] = (),
    ) -> OutgoingMessage:
        """The message for one recipient: their headers, their field values."""
        values = fields or {}
        missing = self.field_names - values.keys()
        if missing:
            raise KeyError(f"no value for field(s) {sorted(missing)}")
        message_id = f"<{secrets.token_hex(16)}@{self.domain}>"
        head = [
            # Addresses are validated ASCII (no SMTPUTF8), so no encoding is needed.
            f"To: {_check(to_address)}",
            f"Date: {_date_now()}",
            f"Message-ID: {message_id}",
        ]
        if list_unsubscribe:
            head.append(f"List-Unsubscribe: {fold_url_list(list(list_unsubscribe))}")
            # RFC 8058 wants an https URL, and providers act only on one; the
            # embedded mode's http://127.0.0.1 links keep the header so the dev
            # inbox shows what production sends.
            if any(url.startswith(("https://", "http://")) for url in list_unsubscribe):
                head.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
        encoded: dict[_Field, bytes] = {}
        parts: list[bytes | _Field] = [(CRLF.join(head) + CRLF).encode("ascii"), self.head]
        parts.extend(self.body)
        for position in self.field_positions:
            chunk = parts[position + 2]
            assert isinstance(chunk, _Field)
            if chunk not in encoded:
                value = _check(values[chunk.name])
                encoded[chunk] = _qp(html.escape(value) if chunk.escape_html else value)
            parts[position + 2] = encoded[chunk]
        data = b"".join(parts)  # type: ignore[arg-type]  # every _Field was replaced above
        body_hash = self.body_prefix_hash.copy()
        for chunk in self.canonical_rest:
            body_hash.update(relaxed_lines(encoded[chunk]) if isinstance(chunk, _Field) else chunk)
        return OutgoingMessage(
            mail_from=self.mail_from,
            rcpt_to=to_address,
            data=data,
            message_id=message_id,
            body_hash=base64.b64encode(body_hash.digest()).decode("ascii"),
        )


def prepare_message(
    *,
    from_name: str,
    from_address: str,
    subject: str,
    text: str,
    html: str,
    domain: str,
    extra_headers: Mapping[str, str] | None = None,
) -> MessageTemplate:
    """Encode a multipart/alternative message (text first, then HTML) once.

    `text` and `html` may hold field markers (see `field_marker`); HTML values
    are escaped when a recipient's message is rendered, text values are not.
    """
    boundary = "=_" + secrets.token_hex(16)
    headers = [
        ("From", format_address(from_name, from_address)),
        ("Subject", encode_header_text(subject)),
        ("MIME-Version", "1.0"),
    ]
    for name, value in (extra_headers or {}).items():
        _check(name)
        headers.append((name, encode_header_text(value)))
    headers.append(("Content-Type", f'multipart/alternative; boundary="{boundary}"'))
    head = CRLF.join(f"{name}: {value}" for name, value in headers) + CRLF + CRLF
    body: list[bytes | _Field] = []
    for subtype, content in (("plain", text), ("html", html)):
        body.append(
            (
                f"--{boundary}{CRLF}"
                f"Content-Type: text/{subtype}; charset=utf-8{CRLF}"
                f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
            ).encode("ascii")
        )
        body.extend(_chunks(content, escape_html=subtype == "html"))
    body.append(f"--{boundary}--{CRLF}".encode("ascii"))
    first_field = next((i for i, c in enumerate(body) if isinstance(c, _Field)), len(body))
    prefix = hashlib.sha256()
    for chunk in body[:first_field]:
        assert isinstance(chunk, bytes)
        prefix.update(relaxed_lines(chunk))
    return MessageTemplate(
        mail_from=from_address,
        domain=domain,
        head=head.encode("ascii"),
        body=tuple(body),
        field_names=frozenset(chunk.name for chunk in body if isinstance(chunk, _Field)),
        field_positions=tuple(i for i, chunk in enumerate(body) if isinstance(chunk, _Field)),
        body_prefix_hash=prefix,
        canonical_rest=tuple(
            chunk if isinstance(chunk, _Field) else relaxed_lines(chunk)
            for chunk in body[first_field:]
        ),
    )


def build_message(
    *,
    from_name: str,
    from_address: str,
    to_address: str,
    subject: str,
    text: str,
    html: str,
    domain: str,
    list_unsubscribe: Sequence[str] = (),
) -> OutgoingMessage:
    """A single message with nothing to personalise (transactional email)."""
    template = prepare_message(
        from_name=from_name,
        from_address=from_address,
        subject=subject,
        text=text,
        html=html,
        domain=domain,
    )
    return template.render(to_address=to_address, list_unsubscribe=list_unsubscribe)
