"""The dev inbox: an SMTP server on loopback that keeps every message as a .eml file.

The embedded mode points SMTP_URL here, and the web app shows the folder at
/dev/inbox. Tests use the same server as their real SMTP peer.
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

_ID = re.compile(r"^[0-9]{8}T[0-9]{12}-[0-9a-f]{8}$")


class InboxHandler:
    """aiosmtpd handler: writes each message atomically as `<id>.eml`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:  # noqa: N802
        now = datetime.now(UTC)
        message_id = f"{now:%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}"
        raw = envelope.original_content or b""
        trace = (
            f"X-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        temporary = self.folder / f".{message_id}.tmp"
        temporary.write_bytes(trace + raw)
        os.replace(temporary, self.folder / f"{message_id}.eml")
        with self._arrived:
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_until(
        self, predicate: Callable[[list[InboxMessage]], bool], timeout: float = 30.0
    ) -> list[InboxMessage]:
        """Block until `predicate(messages)` holds or `timeout` passes; return the messages."""
        with self._arrived:
            self._arrived.wait_for(lambda: predicate(list_messages(self.folder)), timeout=timeout)
        return list_messages(self.folder)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[InboxMessage]:
        """Block until the folder holds at least `count` messages, then return them."""
        return self.wait_until(lambda messages: len(messages) >= count, timeout)


@dataclass(frozen=True)
class InboxMessage:
    id: str
    sender: str
    to: str
    subject: str
    received_at: datetime
    path: Path

    def parsed(self) -> EmailMessage:
        message = email.message_from_bytes(self.path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message

    def as_json(self) -> dict[str, str]:
        return {
            "id": self.id,
            "from": self.sender,
            "to": self.to,
            "subject": self.subject,
            "received_at": self.received_at.isoformat(),
        }


def _read_headers(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        parser = email.parser.BytesHeaderParser(policy=email.policy.default)
        message = parser.parse(handle)
    assert isinstance(message, EmailMessage)
    return message


def _load(path: Path) -> InboxMessage:
    headers = _read_headers(path)
    stamp = path.stem.split("-", 1)[0]
    return InboxMessage(
        id=path.stem,
        sender=str(headers.get("From", "")),
        to=str(headers.get("To", "")),
        subject=str(headers.get("Subject", "")),
        received_at=datetime.strptime(stamp, "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC),
        path=path,
    )


def iter_messages(folder: Path) -> Iterator[InboxMessage]:
    """Messages in the folder, newest first."""
    if not folder.exists():
        return
    for path in sorted(folder.glob("*.eml"), reverse=True):
        yield _load(path)


def list_messages(folder: Path) -> list[InboxMessage]:
    return list(iter_messages(folder))


def get_message(folder: Path, message_id: str) -> InboxMessage | None:
    """One message by id, or None; ids are checked so no path can escape the folder."""
    if not _ID.match(message_id):
        return None
    path = folder / f"{message_id}.eml"
    return _load(path) if path.exists() else None


def start_dev_inbox(folder: Path, *, host: str, port: int) -> Controller:
    """Start the SMTP server in a background thread; `.handler` waits for messages."""
    handler = InboxHandler(folder)
    controller = Controller(handler, hostname=host, port=port, data_size_limit=10 * 1024 * 1024)
    controller.start()
    return controller
