"""The SMTP transport against real SMTP servers on loopback, and DKIM on the way out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dkim
import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.dev_inbox import InboxHandler, InboxMessage
from newsletter.delivery.mime import build_message
from newsletter.delivery.sender import (
    PermanentDeliveryError,
    SMTPConfig,
    SMTPSender,
    TransientDeliveryError,
    make_sender,
)
from newsletter.subscribers.emails import LifecycleEmail, send_lifecycle_email
from tests.conftest import SmtpSink, free_port
from tests.delivery.keys import SELECTOR, Key
from tests.factories import make_subscriber


class RefusingHandler:
    """An SMTP server that answers RCPT with a fixed reply."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    async def handle_RCPT(  # noqa: N802  (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        return self.reply


def _message() -> Any:
    return build_message(
        from_name="Letter",
        from_address="newsletter@example.org",
        to_address="reader@example.org",
        subject="Hello",
        text="Hi",
        html="<p>Hi</p>",
        domain="example.org",
    )


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("550 5.1.1 No such user", PermanentDeliveryError),
        ("451 4.7.1 Try again later", TransientDeliveryError),
    ],
)
def test_smtp_replies_become_domain_errors(reply: str, error: type[Exception]) -> None:
    port = free_port()
    controller = Controller(RefusingHandler(reply), hostname="127.0.0.1", port=port)
    controller.start()
    sender = SMTPSender(SMTPConfig.from_url(f"smtp://127.0.0.1:{port}"))
    try:
        with pytest.raises(error, match=reply.split()[0]):
            sender.send(_message())
    finally:
        sender.close()
        controller.stop()


def test_a_refused_connection_is_transient() -> None:
    sender = SMTPSender(SMTPConfig.from_url(f"smtp://127.0.0.1:{free_port()}"))
    with pytest.raises(TransientDeliveryError, match="cannot connect"):
        sender.send(_message())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://relay.example.org:587?starttls=true", ("relay.example.org", 587, True, False)),
        ("smtps://u%40x:p%3Aw@relay.example.org", ("relay.example.org", 465, False, True)),
        ("smtp://127.0.0.1:2525", ("127.0.0.1", 2525, False, False)),
    ],
)
def test_smtp_urls(url: str, expected: tuple[str, int, bool, bool]) -> None:
    config = SMTPConfig.from_url(url)
    assert (config.host, config.port, config.starttls, config.implicit_tls) == expected
    if "u%40x" in url:
        assert (config.username, config.password) == ("u@x", "p:w")


def test_bad_smtp_url_is_refused() -> None:
    with pytest.raises(ValueError, match="SMTP_URL"):
        SMTPConfig.from_url("http://relay.example.org")


def test_configured_dkim_signs_what_leaves_and_dkimpy_verifies_it(
    session: Session, settings: Settings, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    key = Key(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    key_path = tmp_path / "dkim.pem"
    key_path.write_bytes(key.pem)
    signing = settings.model_copy(
        update={"dkim_private_key_path": key_path, "dkim_selector": SELECTOR}
    )
    subscriber = make_subscriber(session)
    send_lifecycle_email(
        session,
        subscriber.id,
        LifecycleEmail.WELCOME,
        settings=signing,
        sender=make_sender(signing, smtp_url=smtp_sink.url),
    )
    [received] = smtp_sink.wait_for(1)
    assert isinstance(received, InboxMessage)
    raw = received.path.read_bytes().split(b"\r\n", 2)[2]  # drop the inbox's envelope lines
    assert dkim.verify(raw, dnsfunc=key.dnsfunc)
    signed = re.search(rb"\bh=([^;]+);", raw.replace(b"\r\n\t", b"").replace(b"\r\n ", b""))
    assert signed is not None
    names = {name.strip().lower() for name in signed.group(1).split(b":")}
    assert {b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe",
            b"list-unsubscribe-post"} <= names  # fmt: skip


class SelectiveInbox(InboxHandler):
    """The dev inbox, refusing one address with 550 and optionally offering PIPELINING."""

    def __init__(self, folder: Path, *, refuse: str, pipelining: bool) -> None:
        super().__init__(folder)
        self.refuse = refuse
        self.pipelining = pipelining

    async def handle_EHLO(  # noqa: N802  (aiosmtpd's hook name)
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address == self.refuse:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_a_refused_recipient_leaves_the_connection_usable(tmp_path: Path, pipelining: bool) -> None:
    port = free_port()
    inbox = SelectiveInbox(tmp_path / "inbox", refuse="gone@example.org", pipelining=pipelining)
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    sender = SMTPSender(SMTPConfig.from_url(f"smtp://127.0.0.1:{port}"))

    def message(to: str, body: str) -> Any:
        return build_message(
            from_name="Letter", from_address="newsletter@example.org", to_address=to,
            subject="Hi", text=body, html=f"<p>{body}</p>", domain="example.org",
        )  # fmt: skip

    try:
        sender.send(message("one@example.org", ".a line that starts with a dot\n."))
        with pytest.raises(PermanentDeliveryError, match="550"):
            sender.send(message("gone@example.org", "never"))
        sender.send(message("two@example.org", "after the refusal"))
    finally:
        sender.close()
        controller.stop()
    received = inbox.wait_for(2)
    assert sorted(m.to for m in received) == ["one@example.org", "two@example.org"]
    first = next(m for m in received if m.to == "one@example.org").parsed()
    text = first.get_body(preferencelist=("plain",))
    assert text is not None
    assert text.get_content().replace("\r\n", "\n") == ".a line that starts with a dot\n."
