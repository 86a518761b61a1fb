"""The subscriber lifecycle's emails: confirm, welcome, and "already subscribed"."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.delivery.mime import OutgoingMessage, build_message
from newsletter.delivery.sender import Sender
from newsletter.rendering.emails import layout_context, render_email
from newsletter.rendering.personal import list_unsubscribe
from newsletter.subscribers.models import Subscriber, SubscriberStatus
from newsletter.subscribers.tokens import TokenSigner, signer_for


class LifecycleEmail(StrEnum):
    CONFIRM = "confirm"
    WELCOME = "welcome"
    ALREADY_SUBSCRIBED = "already-subscribed"


# Each email goes only to a subscriber still in the state that asked for it, so a
# task that runs late (or twice) never confirms-by-mistake or greets a leaver.
_REQUIRED_STATUS = {
    LifecycleEmail.CONFIRM: SubscriberStatus.PENDING,
    LifecycleEmail.WELCOME: SubscriberStatus.ACTIVE,
    LifecycleEmail.ALREADY_SUBSCRIBED: SubscriberStatus.ACTIVE,
}


@dataclass(frozen=True)
class SubscriberLinks:
    preferences_url: str
    unsubscribe_url: str

    @classmethod
    def for_subscriber(
        cls, subscriber_id: int, *, base_url: str, signer: TokenSigner
    ) -> SubscriberLinks:
        token = signer.manage_token(subscriber_id)
        return cls(preferences_url=f"{base_url}/p/{token}", unsubscribe_url=f"{base_url}/u/{token}")


def build_lifecycle_email(
    subscriber: Subscriber, kind: LifecycleEmail, *, settings: Settings
) -> OutgoingMessage:
    """Render and assemble one lifecycle email for `subscriber`."""
    signer = signer_for(settings.effective_secret_key, settings.confirm_token_max_age_seconds)
    base_url = settings.effective_base_url
    context: dict[str, Any] = {
        **layout_context(settings),
        "name": subscriber.name,
        "topics": subscriber.topics,
    }
    urls: list[str] = []
    if kind is LifecycleEmail.CONFIRM:
        token = signer.confirm_token(subscriber.id, subscriber.confirmation_nonce)
        context["confirm_url"] = f"{base_url}/confirm/{token}"
        context["valid_days"] = settings.confirm_token_max_age_seconds // 86400
    else:
        links = SubscriberLinks.for_subscriber(subscriber.id, base_url=base_url, signer=signer)
        context["preferences_url"] = links.preferences_url
        context["unsubscribe_url"] = links.unsubscribe_url
        urls = list_unsubscribe(links.unsubscribe_url, mailto=settings.unsubscribe_mailto)
    rendered = render_email(kind.value, context)
    return build_message(
        from_name=settings.from_name,
        from_address=settings.from_address,
        to_address=subscriber.email,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        domain=settings.sending_domain,
        list_unsubscribe=urls,
    )


def send_lifecycle_email(
    session: Session,
    subscriber_id: int,
    kind: LifecycleEmail,
    *,
    settings: Settings,
    sender: Sender,
) -> str | None:
    """Send one lifecycle email; returns a skip reason instead when it no longer applies."""
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        return "subscriber gone"
    if subscriber.status != _REQUIRED_STATUS[kind]:
        return f"subscriber is {subscriber.status}"
    message = build_lifecycle_email(subscriber, kind, settings=settings)
    try:
        sender.send(message)
    finally:
        sender.close()
    return None
