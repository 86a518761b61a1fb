"""A broadcast edition: one staff-written message, rendered once for every recipient."""

from __future__ import annotations

from dataclasses import dataclass, field

from newsletter.config import Settings
from newsletter.delivery.mime import MessageTemplate, OutgoingMessage
from newsletter.rendering.campaigns import campaign_template, render_broadcast
from newsletter.rendering.personal import Recipient, list_unsubscribe, personal_values
from newsletter.subscribers.tokens import TokenSigner


@dataclass
class BroadcastEdition:
    subject: str
    body_markdown: str
    settings: Settings
    campaign_id: str = "broadcast"
    variants: dict[str, MessageTemplate] = field(default_factory=dict)

    def template(self) -> MessageTemplate:
        """The one variant, rendered and inlined on first use."""
        if "all" not in self.variants:
            rendered = render_broadcast(self.subject, self.body_markdown, settings=self.settings)
            self.variants["all"] = campaign_template(
                rendered,
                settings=self.settings,
                list_name="announcements",
                list_id="news",
                feedback_id=f"{self.campaign_id}:broadcast",
            )
        return self.variants["all"]

    def message_for(self, subscriber: Recipient, *, signer: TokenSigner) -> OutgoingMessage | None:
        values = personal_values(
            subscriber.id, subscriber.name, base_url=self.settings.effective_base_url, signer=signer
        )
        return self.template().render(
            to_address=subscriber.email,
            fields=values,
            list_unsubscribe=list_unsubscribe(
                values["unsubscribe_url"], mailto=self.settings.unsubscribe_mailto
            ),
        )
