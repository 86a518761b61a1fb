"""The periodic schedule: `celery -A scheduler beat`."""

from celery.schedules import crontab

from worker import app

app.conf.beat_schedule = {
    "expire-pending-signups": {
        "task": "newsletter.expire_pending_signups",
        "schedule": crontab(minute="17", hour="3"),
    },
}

__all__ = ["app"]
