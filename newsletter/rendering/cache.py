"""Rendered variants shared by every worker process through Redis.

A variant is rendered by Jinja2 and inlined by premailer once per campaign,
not once per worker process: the first process to need it stores the result,
the others read it (a cache miss at the same moment only costs a second render).
"""

from __future__ import annotations

import contextlib
import json
from typing import Protocol

import redis

from newsletter.rendering.emails import RenderedEmail


class RenderCache(Protocol):
    def get(self, key: str) -> RenderedEmail | None: ...

    def put(self, key: str, rendered: RenderedEmail) -> None: ...


class RedisRenderCache:
    """A RenderCache in Redis, with a lifetime longer than any campaign's sending."""

    def __init__(self, client: redis.Redis, *, ttl_seconds: int = 2 * 24 * 3600) -> None:
        self._client = client
        self._ttl = ttl_seconds

    def get(self, key: str) -> RenderedEmail | None:
        try:
            raw = self._client.get(f"newsletter:render:{key}")
        except redis.RedisError:
            return None  # rendering again is always correct, only slower
        if raw is None:
            return None
        data = json.loads(raw)
        return RenderedEmail(subject=data["subject"], text=data["text"], html=data["html"])

    def put(self, key: str, rendered: RenderedEmail) -> None:
        payload = json.dumps(
            {"subject": rendered.subject, "text": rendered.text, "html": rendered.html}
        )
        # Not stored means rendered again elsewhere: slower, still correct.
        with contextlib.suppress(redis.RedisError):
            self._client.set(f"newsletter:render:{key}", payload, ex=self._ttl)
