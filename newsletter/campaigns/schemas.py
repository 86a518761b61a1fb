"""The shape of campaign input and output at the staff API."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from newsletter.campaigns.segments import SegmentIn
from newsletter.content.schemas import AwareDatetime
from newsletter.subscribers.schemas import Email

MAX_TEST_ADDRESSES = 10


def _one_line(value: str) -> str:
    """Refuse, rather than fold, a line break: in a Subject it would start a new header."""
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in value):
        raise ValueError("must be a single line without control characters")
    value = unicodedata.normalize("NFC", value.strip())
    if not value:
        raise ValueError("must not be blank")
    return value


Subject = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_one_line)]
CampaignName = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(_one_line)
]
TopicSlug = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _audience(value: object) -> object:
    # {"topics": [...]} is shorthand for a segment of those topics' followers.
    if isinstance(value, dict) and set(value) == {"topics"}:
        return {"topics_any": value["topics"]}
    return value


class BroadcastIn(BaseModel):
    """A new broadcast draft: `POST /api/v1/campaigns/broadcasts`."""

    model_config = ConfigDict(extra="forbid")

    subject: Subject
    body_markdown: Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
    name: CampaignName | None = None
    audience: Annotated[SegmentIn, BeforeValidator(_audience)] = Field(
        default_factory=SegmentIn,
        description='A segment; {"topics": [...]} is short for {"topics_any": [...]}. '
        "Everyone active when empty.",
    )
    send_at: AwareDatetime | None = Field(
        default=None,
        description="When `schedule` should send it, with a time zone offset, "
        "e.g. 2026-12-01T09:00:00-05:00",
    )


class ScheduleIn(BaseModel):
    """`POST /api/v1/campaigns/{id}/schedule`: a future time, or nothing to send now."""

    model_config = ConfigDict(extra="forbid")

    send_at: AwareDatetime | None = Field(
        default=None,
        description="With a time zone offset; absent: the draft's own send_at; "
        "absent there too, or in the past: send now",
    )


class TestSendIn(BaseModel):
    """`POST /api/v1/campaigns/{id}/test-send`: where to send a test copy."""

    __test__ = False  # not a pytest test class, whatever its name

    model_config = ConfigDict(extra="forbid")

    addresses: list[Email] = Field(min_length=1, max_length=MAX_TEST_ADDRESSES)


class TestSendOut(BaseModel):
    __test__ = False

    sent: list[str]


class CampaignOut(BaseModel):
    """A campaign and its progress, read from the delivery ledger."""

    id: int
    kind: str
    name: str
    status: str
    subject: str
    audience: dict[str, object]
    send_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int] = Field(description="Deliveries by status: queued, sent, failed, ...")
    total: int
    rate_per_second: float
    eta_seconds: float | None
