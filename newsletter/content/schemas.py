"""The shape of an article, checked at every way in (staff API, Markdown, feeds)."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)


def _single_line(value: str) -> str:
    value = unicodedata.normalize("NFC", " ".join(value.split()))
    if any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in value):
        raise ValueError("must not contain control characters")
    return value


def https_url(value: str) -> str:
    """An absolute https URL with a host; ValueError otherwise."""
    parts = urlsplit(value.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an absolute https:// URL")
    if any(ch.isspace() or ord(ch) < 32 for ch in value.strip()):
        raise ValueError("must not contain spaces or control characters")
    return value.strip()


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must include a time zone, e.g. 2026-11-20T09:00:00Z")
    return value


Title = Annotated[
    str, StringConstraints(min_length=1, max_length=300), AfterValidator(_single_line)
]
Line = Annotated[str, StringConstraints(max_length=300), AfterValidator(_single_line)]
HttpsUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(https_url)]
AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


class ArticleIn(BaseModel):
    """An article from any source; `POST /api/v1/articles` takes exactly this."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    canonical_url: HttpsUrl
    summary: Annotated[str, StringConstraints(max_length=2000)] = ""
    body_markdown: Annotated[str, StringConstraints(max_length=200_000)] | None = None
    body_html: Annotated[str, StringConstraints(max_length=400_000)] | None = None
    image_url: HttpsUrl | None = None
    image_alt: Line = ""
    author: Annotated[str, StringConstraints(max_length=200), AfterValidator(_single_line)] = ""
    published_at: AwareDatetime | None = None
    topics: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=20
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> ArticleIn:
        if self.body_markdown is not None and self.body_html is not None:
            raise ValueError("give body_markdown or body_html, not both")
        if self.image_url and not self.image_alt:
            raise ValueError("image_alt is required with image_url (it is the image's alt text)")
        return self


class ArticleOut(BaseModel):
    id: int
    title: str
    canonical_url: str
    summary: str
    image_url: str | None
    image_alt: str
    author: str
    published_at: datetime
    topics: list[str]
    created: bool
