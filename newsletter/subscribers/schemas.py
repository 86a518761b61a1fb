"""The shape of subscriber input, checked once at every edge (API, form, CLI)."""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Annotated
from zoneinfo import available_timezones

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_TOPICS = 20


def normalise_email(value: str) -> str:
    """The normalised form of an address; ValueError says what is wrong with a bad one."""
    if any(ch in value for ch in "\r\n\x00"):
        raise ValueError("the email address contains a line break or control character")
    try:
        # No SMTPUTF8: every relay takes an ASCII address, and IDN domains are
        # kept in their ASCII (punycode) form.
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False)
        return checked.ascii_email or checked.normalized
    except EmailNotValidError as e:
        raise ValueError(str(e)) from e


def _plain_text(value: str) -> str:
    value = unicodedata.normalize("NFC", value.strip())
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in value):
        raise ValueError("must not contain line breaks or control characters")
    return value


@lru_cache(maxsize=1)
def _known_timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_known_timezone(value: str) -> bool:
    return value in _known_timezones()


def _timezone(value: str) -> str:
    if not is_known_timezone(value):
        raise ValueError(f"unknown time zone {value!r}; use an IANA name like 'Europe/Paris'")
    return value


Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(normalise_email)]
Name = Annotated[str, StringConstraints(max_length=100), AfterValidator(_plain_text)]
TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_timezone)]
TopicSlug = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class SubscriptionIn(BaseModel):
    """A signup request: `POST /api/v1/subscriptions`, the signup form, and the CLI."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    name: Name = ""
    topics: list[TopicSlug] = Field(min_length=1, max_length=MAX_TOPICS)
    timezone: TimeZone | None = None


class PreferencesIn(BaseModel):
    """What a subscriber may change from the preferences page."""

    model_config = ConfigDict(extra="forbid")

    name: Name = ""
    topics: list[TopicSlug] = Field(min_length=1, max_length=MAX_TOPICS)
    timezone: TimeZone
    digest_paused: bool = False


class SubscriptionOut(BaseModel):
    """The answer to a signup; the same whatever the address's history, so it leaks none."""

    email: str
    name: str
    topics: list[str]
    timezone: str
    status: str = "pending_confirmation"
    message: str = "Check your inbox: we sent a link to confirm your subscription."


class TopicOut(BaseModel):
    slug: str
    name: str
    description: str


def first_error_messages(exc: Exception) -> list[str]:
    """Readable 'field: problem' lines from a pydantic ValidationError."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return [str(exc)]
    messages = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "body"
        text = error["msg"].removeprefix("Value error, ")
        messages.append(f"{where}: {text}")
    return messages
