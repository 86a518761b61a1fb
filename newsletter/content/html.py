"""Markdown to safe HTML, and readable plain text from HTML."""

from __future__ import annotations

import html
import re
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

# What an article body may keep: structure and emphasis, links and images.
# Everything else (scripts, styles, iframes, event handlers) is dropped by nh3.
ALLOWED_TAGS = {
    "p", "br", "h2", "h3", "h4", "ul", "ol", "li", "strong", "em", "b", "i",
    "blockquote", "a", "img", "figure", "figcaption", "hr", "code", "pre",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"}}


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def sanitise_html(value: str) -> str:
    """Only the allowed tags and attributes, only http(s) and mailto links."""
    return nh3.clean(
        value,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"https", "http", "mailto"},
        link_rel="noopener noreferrer",
    )


def markdown_to_html(text: str) -> str:
    """CommonMark (raw HTML off) rendered and then sanitised."""
    return sanitise_html(_markdown().render(text))


_BLOCK_END = re.compile(r"</(p|h[1-6]|li|blockquote|tr|figure|pre)>|<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"[ \t\r\f\v]+")


def html_to_text(value: str) -> str:
    """Plain text of sanitised HTML: one line per block, entities decoded."""
    text = _BLOCK_END.sub("\n", value)
    text = html.unescape(_TAG.sub("", text))
    lines = (_SPACE.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def first_sentences(text: str, limit: int = 280) -> str:
    """A summary: whole words of the first paragraph, at most `limit` characters."""
    paragraph = text.strip().split("\n", 1)[0]
    if len(paragraph) <= limit:
        return paragraph
    cut = paragraph[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"
