"""Digest and broadcast emails, rendered once per variant with personal-field markers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from newsletter.config import Settings
from newsletter.content.html import html_to_text, markdown_to_html
from newsletter.content.models import Article, Topic
from newsletter.delivery.mime import MessageTemplate, prepare_message
from newsletter.rendering.emails import RenderedEmail, layout_context, render_email
from newsletter.rendering.personal import marker_context


@dataclass(frozen=True)
class DigestSection:
    topic: Topic
    articles: Sequence[Article]


def _and_join(names: Sequence[str]) -> str:
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def render_digest(
    sections: Sequence[DigestSection], *, settings: Settings, period_label: str
) -> RenderedEmail:
    """One digest variant: the given topic sections, personal fields left as markers."""
    article_count = len({article.id for section in sections for article in section.articles})
    topic_names = _and_join([section.topic.name for section in sections])
    first_titles = [section.articles[0].title for section in sections if section.articles]
    return render_email(
        "digest",
        {
            **layout_context(settings),
            **marker_context(),
            "sections": sections,
            "article_count": article_count,
            "topic_names": topic_names,
            "period_label": period_label,
            "preheader": "; ".join(first_titles)[:150],
        },
    )


def render_broadcast(subject: str, body_markdown: str, *, settings: Settings) -> RenderedEmail:
    """A broadcast: staff-written Markdown in the house layout, fields left as markers."""
    body_html = markdown_to_html(body_markdown)
    body_text = html_to_text(body_html)
    return render_email(
        "broadcast",
        {
            **layout_context(settings),
            **marker_context(),
            "subject": " ".join(subject.split()),
            "body_html": body_html,
            "body_text": body_text,
            "preheader": body_text.split("\n", 1)[0][:150],
        },
    )


def campaign_template(
    rendered: RenderedEmail, *, settings: Settings, list_name: str, list_id: str, feedback_id: str
) -> MessageTemplate:
    """A rendered campaign variant encoded once, with its list headers (RFC 2919)."""
    return prepare_message(
        from_name=settings.from_name,
        from_address=settings.from_address,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        domain=settings.sending_domain,
        extra_headers={
            "List-Id": f"{settings.publisher_name} {list_name} "
            f"<{list_id}.{settings.sending_domain}>",
            "Feedback-ID": f"{feedback_id}:newsletter",
        },
    )
