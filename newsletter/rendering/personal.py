"""The per-recipient fields of campaign emails, and their values for one subscriber.

Campaign templates are rendered once per variant with markers in place of these
fields; `delivery.mime.MessageTemplate.render` fills in each recipient's values.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.delivery.mime import field_marker
from newsletter.subscribers.tokens import TokenSigner

PERSONAL_FIELDS = ("greeting_name", "preferences_url", "unsubscribe_url")


@dataclass(frozen=True)
class Recipient:
    """What a campaign message needs of a subscriber: loaded as plain rows, not ORM objects."""

    id: int
    email: str
    name: str
    topic_ids: tuple[int, ...] = ()


def marker_context() -> dict[str, str]:
    """Template variables that render as the markers of the personal fields."""
    return {name: field_marker(name) for name in PERSONAL_FIELDS}


def personal_values(
    subscriber_id: int, name: str, *, base_url: str, signer: TokenSigner
) -> dict[str, str]:
    """One subscriber's values: " Ada" (or "" without a name) and their two links."""
    token = signer.manage_token(subscriber_id)
    return {
        "greeting_name": f" {name}" if name else "",
        "preferences_url": f"{base_url}/p/{token}",
        "unsubscribe_url": f"{base_url}/u/{token}",
    }


def list_unsubscribe(unsubscribe_url: str, *, mailto: str | None) -> list[str]:
    """The List-Unsubscribe URLs: the one-click https URL, then the optional mailto."""
    urls = [unsubscribe_url]
    if mailto:
        urls.append(f"mailto:{mailto}?subject=unsubscribe")
    return urls
