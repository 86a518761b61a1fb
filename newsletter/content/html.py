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
    "p", "br", "h1", "h2", "h3", "h4", "ul", "ol", "li", "strong", "em", "b", "i",
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


_LINK = re.compile(r'<a\s[^>]*?href="([^"]*)"[^>]*>(.*?)</a>', re.IGNORECASE | re.DOTALL)
_LIST_ITEM = re.compile(r"<li[^>]*>", re.IGNORECASE)
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_BLOCK_END = re.compile(r"</(p|h[1-6]|ul|ol|blockquote|tr|figure|pre|table)>", re.IGNORECASE)
_ITEM_END = re.compile(r"</li>", re.IGNORECASE)
_HTML_SPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _link_as_text(match: re.Match[str]) -> str:
    href, label = html.unescape(match.group(1)), _TAG.sub("", match.group(2)).strip()
    return href if label in {"", href} else f"{label} ({href})"


def _is_list_gap(lines: list[str], index: int) -> bool:
    return (
        0 < index < len(lines) - 1
        and lines[index + 1].startswith("* ")
        and lines[index - 1].startswith("* ")
    )


def html_to_text(value: str) -> str:
    """Readable plain text of sanitised HTML: paragraphs, list bullets, links as (URL)."""
    # Line breaks in HTML source are just spaces; the tags say where lines end.
    text = _HTML_SPACE.sub(" ", value)
    text = _LINK.sub(_link_as_text, text)
    text = _LIST_ITEM.sub("\n* ", text)
    text = _LINE_BREAK.sub("\n", text)
    text = _ITEM_END.sub("\n", text)
    text = _BLOCK_END.sub("\n\n", text)
    text = html.unescape(_TAG.sub("", text))
    lines = [_SPACE.sub(" ", line).strip() for line in text.split("\n")]
    lines = [line for index, line in enumerate(lines) if line or not _is_list_gap(lines, index)]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def first_sentences(text: str, limit: int = 280) -> str:
    """A summary: whole words of the first paragraph, at most `limit` characters."""
    paragraph = text.strip().split("\n\n", 1)[0].replace("\n", " ")
    if len(paragraph) <= limit:
        return paragraph
    cut = paragraph[:limit].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"
