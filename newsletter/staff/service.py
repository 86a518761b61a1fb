"""Creating, checking and revoking staff API tokens."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.staff.models import StaffToken

TOKEN_PREFIX = "nlst_"  # noqa: S105  (a public prefix that makes leaked tokens greppable)


class StaffTokenError(Exception):
    """No token, an unknown one, or a revoked one."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_staff_token(session: Session, *, name: str) -> tuple[StaffToken, str]:
    """A new token; the plain value is returned once and never stored."""
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = StaffToken(name=name, token_hash=_hash(plain), created_at=utcnow())
    session.add(token)
    session.flush()
    return token, plain


def authenticate_staff_token(session: Session, plain: str) -> StaffToken:
    """The live token `plain` names, its last use recorded; StaffTokenError otherwise."""
    if not plain.startswith(TOKEN_PREFIX) or len(plain) > 200:
        raise StaffTokenError("invalid token")
    token = session.scalar(select(StaffToken).where(StaffToken.token_hash == _hash(plain)))
    if token is None or token.revoked_at is not None:
        raise StaffTokenError("invalid or revoked token")
    token.last_used_at = utcnow()
    return token


def list_staff_tokens(session: Session) -> Sequence[StaffToken]:
    return session.scalars(select(StaffToken).order_by(StaffToken.id)).all()


def revoke_staff_token(session: Session, token_id: int) -> bool:
    """Revoke a token by id; False when there is no such live token."""
    token = session.get(StaffToken, token_id)
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    return True
