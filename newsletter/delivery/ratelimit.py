"""Per-relay sending limits shared through Redis by every worker process.

A relay cares about two things: how many messages arrive per second, and how
many connections are open at once. Campaign workers run in several processes
(and machines), so both limits live in Redis and are checked by Lua scripts,
which Redis runs atomically. The scripts read the time with Redis `TIME`, never
the caller's clock, so workers on different machines agree on it.
"""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from newsletter.delivery.sender import TransientDeliveryError

log = logging.getLogger(__name__)

KEY_PREFIX = "newsletter:"

# GCRA: the key holds the theoretical arrival time (TAT), in microseconds of
# Redis time, at which the limiter would be idle again. A request for `count`
# permits pushes it `count` intervals further; it is allowed while the new TAT
# is at most `burst` intervals ahead of now. Otherwise nothing is written and
# the reply is how many microseconds to wait before it would be allowed.
# Numbers are written with %.3f: Lua's default number-to-string keeps only 14
# significant digits, and microsecond timestamps have 16.
_GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local count = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local new_tat = tat + interval * count
local allow_at = new_tat - interval * burst
if allow_at > now then
  return math.ceil(allow_at - now)
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat),
           'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return 0
"""

# Keep the slots key alive as long as its longest lease, so an idle relay's key
# disappears by itself and a short-lease holder never expires a long one.
_SLOTS_TTL = """
local function expire_with_last_lease(key, now)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', key, math.max(1, math.ceil((tonumber(last[2]) - now) / 1000)))
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# A slot is a ZSET member (a random token) scored with its lease's expiry, in
# microseconds of Redis time. Expired members are dropped before counting, so a
# crashed holder's slot comes back when its lease runs out.
_TAKE_SLOT = (
    _SLOTS_TTL
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[2])), ARGV[3])
expire_with_last_lease(KEYS[1], now)
return 1
"""
)

# Renewing an expired member that nobody has swept yet is safe: it is still
# counted by ZCARD, so nobody can have taken its place.
_RENEW_SLOT = (
    _SLOTS_TTL
    + """
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', string.format('%.0f', now + tonumber(ARGV[1])), ARGV[2])
expire_with_last_lease(KEYS[1], now)
return 1
"""
)


class RateLimiter:
    """A messages-per-second limit shared by every process that uses the same key."""

    def __init__(
        self, client: redis.Redis, key: str, per_second: float, burst: int | None = None
    ) -> None:
        self.key = key
        self.per_second = per_second
        # One second's worth by default, so a chunk of up to `per_second`
        # messages can be acquired in one call.
        self.burst = burst if burst is not None else max(1, math.ceil(per_second))
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, not {self.burst}")
        self._client = client
        self._script = client.register_script(_GCRA)

    @property
    def unlimited(self) -> bool:
        """True when `per_second` is zero or less: acquire() never calls Redis."""
        return self.per_second <= 0

    def acquire(self, count: int = 1) -> float:
        """Block until `count` permits are granted; return the seconds slept."""
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        if self.unlimited:
            return 0.0
        if count > self.burst:
            # GCRA could never grant it: waiting would last forever.
            raise ValueError(f"cannot acquire {count} permits at once; the burst is {self.burst}")
        interval_us = 1_000_000 / self.per_second
        waited = 0.0
        while True:
            try:
                wait_us = int(self._script(keys=[self.key], args=[interval_us, self.burst, count]))
            except redis.RedisError as e:
                raise TransientDeliveryError(f"rate limiter {self.key} unavailable") from e
            if wait_us <= 0:
                return waited
            # Sleeping is the limiting; retry afterwards, since another worker
            # may have taken the permits in the meantime.
            time.sleep(wait_us / 1_000_000)
            waited += wait_us / 1_000_000


class ConnectionSlots:
    """A cap on concurrent SMTP connections to one relay, across every process."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        limit: int,
        lease_seconds: float = 300,
        *,
        name: str | None = None,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, not {lease_seconds}")
        self.key = key
        self.limit = limit
        self.lease_seconds = lease_seconds
        self.name = name or key
        self._client = client
        self._take = client.register_script(_TAKE_SLOT)
        self._renew = client.register_script(_RENEW_SLOT)
        self._held: set[str] = set()

    @property
    def unlimited(self) -> bool:
        """True when `limit` is zero or less: slot() never calls Redis."""
        return self.limit <= 0

    @contextmanager
    def slot(self, timeout: float = 30) -> Iterator[None]:
        """Hold one connection slot for the block; TransientDeliveryError if none frees up."""
        if self.unlimited:
            yield
            return
        token = self._wait_for_slot(timeout)
        self._held.add(token)
        try:
            yield
        finally:
            self._held.discard(token)
            self._release(token)

    def renew(self) -> bool:
        """Extend the lease of every slot this object holds; False if one was lost."""
        lease_us = self.lease_seconds * 1_000_000
        kept = True
        for token in list(self._held):
            try:
                kept &= bool(self._renew(keys=[self.key], args=[lease_us, token]))
            except redis.RedisError as e:
                raise TransientDeliveryError(f"connection slots {self.key} unavailable") from e
        return kept

    def _try_take(self, token: str) -> bool:
        lease_us = self.lease_seconds * 1_000_000
        try:
            return bool(self._take(keys=[self.key], args=[self.limit, lease_us, token]))
        except redis.RedisError as e:
            raise TransientDeliveryError(f"connection slots {self.key} unavailable") from e

    def _wait_for_slot(self, timeout: float) -> str:
        token = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        delay = 0.05
        while not self._try_take(token):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransientDeliveryError(
                    f"all {self.limit} SMTP connection slots for {self.name} are busy"
                )
            # Jitter keeps waiting workers from polling in lockstep.
            time.sleep(min(remaining, delay * random.uniform(0.8, 1.2)))
            delay = min(delay * 2, 0.5)
        return token

    def _release(self, token: str) -> None:
        try:
            self._client.zrem(self.key, token)
        except redis.RedisError:
            # The lease frees the slot anyway; don't hide the block's own error.
            log.warning("could not release SMTP slot %s on %s", token, self.key, exc_info=True)


def limits_for(
    client: redis.Redis, relay: str, *, per_second: float, max_connections: int
) -> tuple[RateLimiter, ConnectionSlots]:
    """The rate limiter and connection slots for `relay` ("host:port"); 0 means unlimited."""
    return (
        RateLimiter(client, f"{KEY_PREFIX}smtp-rate:{relay}", per_second),
        ConnectionSlots(client, f"{KEY_PREFIX}smtp-slots:{relay}", max_connections, name=relay),
    )
