"""The Celery app, configured from settings, and the after-commit enqueue helper.

Domain code queues work by task name through `enqueue`, so it never imports a
task object and never publishes work for a transaction that did not commit.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import redis
from celery import Celery
from sqlalchemy.orm import Session

from newsletter.config import Settings, get_settings
from newsletter.db import after_commit


def make_celery(settings: Settings) -> Celery:
    """A Celery app on the configured Redis, tuned so no accepted task is lost."""
    app = Celery("newsletter", broker=settings.effective_redis_url, include=["newsletter.tasks"])
    app.conf.update(
        task_default_queue=settings.celery_queue,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=300,
        task_soft_time_limit=240,
        broker_transport_options={"visibility_timeout": 3600},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
        beat_schedule_filename=str(settings.resolved_data_dir / "celerybeat-schedule"),
    )
    return app


celery_app = make_celery(get_settings())


def enqueue(session: Session, task_name: str, *args: Any) -> None:
    """Queue the task `task_name` with plain-JSON `args` once `session` commits."""
    after_commit(session, lambda: celery_app.send_task(task_name, args=list(args)))


def enqueue_later(session: Session, task_name: str, delay_seconds: float, *args: Any) -> None:
    """Like `enqueue`, to run no sooner than `delay_seconds` after the commit."""
    after_commit(
        session,
        lambda: celery_app.send_task(task_name, args=list(args), countdown=delay_seconds),
    )


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    """A client of the broker's Redis, for limits shared between workers."""
    url = get_settings().effective_redis_url
    # Kombu's scheme for a unix socket is redis+socket://; redis-py's is unix://.
    return redis.Redis.from_url(url.replace("redis+socket://", "unix://", 1))
