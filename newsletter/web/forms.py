"""Reading HTML forms safely: size-limited, with clear errors instead of exceptions."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import FormData

from newsletter.web.limits import BodyTooLargeError

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class FormError(Exception):
    """The body is not a readable form; the message says why."""


async def read_form(request: Request) -> FormData:
    """The request's form fields; FormError for another content type or a broken body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in FORM_TYPES:
        raise FormError("expected a form (application/x-www-form-urlencoded or multipart)")
    try:
        return await request.form(max_files=0, max_fields=50, max_part_size=16 * 1024)
    except BodyTooLargeError:
        raise
    except Exception as e:  # starlette raises several kinds for a malformed multipart body
        raise FormError("the form data could not be read") from e


def field(form: FormData, name: str) -> str:
    """One text field ('' when absent); uploads are refused by max_files=0."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def field_list(form: FormData, name: str) -> list[str]:
    return [value for value in form.getlist(name) if isinstance(value, str)]
