"""The Celery app entry point: `celery -A worker worker`."""

from newsletter.queue import celery_app as app

__all__ = ["app"]
