"""Signed tokens in email links: tamper-evident, and the confirm token expires.

A confirm token carries the subscriber id and the nonce of its signup round; a
manage token (preferences and one-click unsubscribe) carries only the id and
never expires, because an unsubscribe link in a years-old email must still work.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, Signer, URLSafeTimedSerializer


class InvalidTokenError(Exception):
    """The token was altered, truncated, or signed with another key."""


class ExpiredTokenError(InvalidTokenError):
    """The token is genuine but older than its allowed age."""


@dataclass(frozen=True)
class ConfirmClaim:
    subscriber_id: int
    nonce: str


def _confirm_claim(payload: object) -> ConfirmClaim:
    match payload:
        case [int(subscriber_id), str(nonce)]:
            return ConfirmClaim(subscriber_id, nonce)
    raise InvalidTokenError("this confirmation link is not valid")


class TokenSigner:
    """Makes and checks the tokens of one signing key."""

    def __init__(self, secret_key: str, *, confirm_max_age: int) -> None:
        # HMAC-SHA384 is 48 bytes, 64 base64 characters with no spare bits: with
        # SHA-1 or SHA-256 some one-character edits of the last character decode to
        # the same signature, and a tampered link would still work.
        signer_kwargs = {"digest_method": hashlib.sha384}
        self._confirm = URLSafeTimedSerializer(
            secret_key, salt="confirm", signer_kwargs=signer_kwargs
        )
        # A manage token is in every campaign message, so it is made per recipient:
        # the bare id, signed, costs a fifth of a serialised (JSON, zlib) payload.
        self._manage = Signer(secret_key, salt="manage", digest_method=hashlib.sha384)
        self._confirm_max_age = confirm_max_age

    def confirm_token(self, subscriber_id: int, nonce: str) -> str:
        return self._confirm.dumps([subscriber_id, nonce])

    def read_confirm_token(self, token: str) -> ConfirmClaim:
        try:
            payload = self._confirm.loads(token, max_age=self._confirm_max_age)
        except SignatureExpired as e:
            raise ExpiredTokenError("this confirmation link has expired") from e
        except BadSignature as e:
            raise InvalidTokenError("this confirmation link is not valid") from e
        return _confirm_claim(payload)

    def read_confirm_token_ignoring_age(self, token: str) -> ConfirmClaim:
        """The claim of a genuine confirm token, expired or not (to offer a fresh one)."""
        try:
            payload = self._confirm.loads(token)
        except BadSignature as e:
            raise InvalidTokenError("this confirmation link is not valid") from e
        return _confirm_claim(payload)

    def manage_token(self, subscriber_id: int) -> str:
        return self._manage.sign(str(subscriber_id)).decode("ascii")

    def read_manage_token(self, token: str) -> int:
        try:
            payload = self._manage.unsign(token)
        except BadSignature as e:
            raise InvalidTokenError("this link is not valid") from e
        if not payload.isdigit() or len(payload) > 18:
            raise InvalidTokenError("this link is not valid")
        return int(payload)


def signer_for(secret_key: str, confirm_max_age: int) -> TokenSigner:
    """The signer for this instance's key (one place builds it for web, tasks and CLI)."""
    return TokenSigner(secret_key, confirm_max_age=confirm_max_age)
