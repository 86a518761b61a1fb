"""Named email templates rendered to subject, text and inlined HTML.

`templates/emails/<name>/{subject.txt, body.txt, body.html}` extend a base
layout. The HTML is inlined by premailer; its default strip_important=True would
remove `!important` from the kept @media rules and so break the phone layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from premailer import Premailer

from newsletter.config import Settings

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates" / "emails"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@lru_cache(maxsize=1)
def email_environment() -> jinja2.Environment:
    """The Jinja2 environment for emails: autoescaped HTML, undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def inline_css(html: str) -> str:
    """Move <style> rules into style attributes, keeping @media rules as they are."""
    return str(
        Premailer(
            html,
            strip_important=False,
            keep_style_tags=False,
            remove_classes=False,
            disable_validation=True,
            cssutils_logging_level="CRITICAL",
            allow_network=False,
            # premailer copies some inlined CSS into HTML attributes (bgcolor on <a>,
            # height="auto" on <img>) that HTML5 forbids; the style attribute is enough.
            disable_basic_attributes=["bgcolor", "width", "height", "align", "valign"],
        ).transform(pretty_print=False)
    )


def layout_context(settings: Settings) -> dict[str, Any]:
    """What every email's layout needs: the publisher's name, address and site links."""
    return {
        "publisher_name": settings.publisher_name,
        "publisher_address": settings.publisher_address,
        "base_url": settings.effective_base_url,
    }


def render_email(name: str, context: dict[str, Any]) -> RenderedEmail:
    """Render the named template with `context` into subject, text and inlined HTML."""
    env = email_environment()
    subject = env.get_template(f"{name}/subject.txt").render(context).strip()
    text = env.get_template(f"{name}/body.txt").render(context).strip() + "\n"
    html = inline_css(env.get_template(f"{name}/body.html").render(context))
    return RenderedEmail(subject=" ".join(subject.split()), text=text, html=html)
