"""Relay limits against the real Redis, from threads and from separate processes.

Timing assertions are lower bounds only: a shared machine can always be slower,
but a limiter that lets mail through too fast is the bug these tests look for.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from newsletter.delivery.ratelimit import ConnectionSlots, RateLimiter, limits_for
from newsletter.delivery.sender import TransientDeliveryError
from newsletter.embedded import PROJECT_ROOT
from tests.conftest import free_port

# Waits on the test's side: generous, since they only bound how long a broken
# limiter can hang the suite.
DEADLINE = 10.0


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield connection
    connection.close()


@pytest.fixture
def new_key(client: redis.Redis) -> Iterator[Callable[[], str]]:
    """Makes keys no other test (or run) uses, and deletes them afterwards."""
    made: list[str] = []

    def make() -> str:
        made.append(f"newsletter:test:{uuid.uuid4().hex}")
        return made[-1]

    yield make
    if made:
        client.delete(*made)


def _python(code: str, *args: str, piped: bool = False) -> subprocess.Popen[str]:
    """A Python child process running `code`, with the test environment (REDIS_URL)."""
    pipe = subprocess.PIPE if piped else None
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=PROJECT_ROOT, text=True, stdin=pipe, stdout=pipe
    )


def test_limiter_grants_the_burst_then_paces_to_the_rate(
    client: redis.Redis, new_key: Callable[[], str]
) -> None:
    key = new_key()
    limiter = RateLimiter(client, key, per_second=50, burst=5)

    start = time.monotonic()
    assert [limiter.acquire() for _ in range(5)] == [0.0] * 5
    assert client.pttl(key) > 0
    waits = [limiter.acquire(5) for _ in range(10)]
    elapsed = time.monotonic() - start

    # 55 permits at 50/s with 5 up front: the last one is due 50 * 20 ms later.
    assert waits[0] > 0
    assert elapsed >= 0.9


def test_limit_is_shared_by_processes(client: redis.Redis, new_key: Callable[[], str]) -> None:
    key = new_key()
    child = """
import os, sys
import redis
from newsletter.delivery.ratelimit import RateLimiter
limiter = RateLimiter(redis.Redis.from_url(os.environ["REDIS_URL"]), sys.argv[1], 40, burst=4)
print("ready", flush=True)
sys.stdin.readline()
for _ in range(10):
    limiter.acquire(3)
print("done", flush=True)
"""
    workers = [_python(child, key, piped=True) for _ in range(2)]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline() == "ready\n"
        start = time.monotonic()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline() == "done\n"
        elapsed = time.monotonic() - start
        for worker in workers:
            assert worker.wait(DEADLINE) == 0
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()

    # 60 permits at 40/s with 4 up front take 1.4 s; a per-process limit would
    # let each worker's 30 through in 0.65 s.
    assert elapsed >= 1.3


def test_acquiring_more_than_the_burst_is_refused(
    client: redis.Redis, new_key: Callable[[], str]
) -> None:
    limiter = RateLimiter(client, new_key(), per_second=100, burst=10)

    assert limiter.acquire(10) == 0.0
    with pytest.raises(ValueError, match="burst is 10"):
        limiter.acquire(11)


def test_unlimited_never_calls_redis(new_key: Callable[[], str]) -> None:
    # No retries: redis-py would otherwise back off for seconds before failing.
    nobody = redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))

    assert RateLimiter(nobody, new_key(), per_second=0).acquire(1000) == 0.0
    with ConnectionSlots(nobody, new_key(), limit=0).slot(timeout=0):
        pass
    # The same client does fail once a limit is set: the above never used it.
    with pytest.raises(TransientDeliveryError):
        RateLimiter(nobody, new_key(), per_second=10).acquire()


def test_a_waiting_holder_gets_the_slot_another_releases(
    client: redis.Redis, new_key: Callable[[], str]
) -> None:
    key = new_key()
    slots = ConnectionSlots(client, key, limit=2)
    inside = threading.Event()
    leave = threading.Event()
    errors: list[BaseException] = []

    def third_holder() -> None:
        try:
            with slots.slot(timeout=DEADLINE):
                inside.set()
                leave.wait(DEADLINE)
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=third_holder)
    try:
        with slots.slot(timeout=0):
            with slots.slot(timeout=0):
                thread.start()
                assert not inside.wait(0.3)
            assert inside.wait(DEADLINE)
            assert client.zcard(key) == 2
    finally:
        leave.set()
        thread.join(DEADLINE)

    assert errors == []
    assert client.zcard(key) == 0


def test_no_free_slot_within_the_timeout_is_transient(
    client: redis.Redis, new_key: Callable[[], str]
) -> None:
    relay = f"{uuid.uuid4().hex}.example.org:587"
    limiter, slots = limits_for(client, relay, per_second=20, max_connections=2)
    try:
        assert limiter.key == f"newsletter:smtp-rate:{relay}"
        assert slots.key == f"newsletter:smtp-slots:{relay}"
        with slots.slot(), slots.slot():
            assert client.pttl(slots.key) > 0
            with (
                pytest.raises(
                    TransientDeliveryError,
                    match=f"all 2 SMTP connection slots for {relay} are busy",
                ),
                slots.slot(timeout=0.3),
            ):
                pass
    finally:
        client.delete(limiter.key, slots.key)


def test_a_crashed_holders_slot_frees_itself_after_the_lease(
    client: redis.Redis, new_key: Callable[[], str]
) -> None:
    key = new_key()
    crash = """
import os, sys
import redis
from newsletter.delivery.ratelimit import ConnectionSlots
slots = ConnectionSlots(redis.Redis.from_url(os.environ["REDIS_URL"]), sys.argv[1], 1, 0.5)
with slots.slot(timeout=0):
    os._exit(0)
"""
    assert _python(crash, key).wait(DEADLINE) == 0
    (crashed,) = client.zrange(key, 0, -1)

    with ConnectionSlots(client, key, limit=1).slot(timeout=DEADLINE):
        held = client.zrange(key, 0, -1)
        assert len(held) == 1
        assert held != [crashed]
