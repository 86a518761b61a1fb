"""The periodic schedule: `celery -A scheduler beat`."""

from celery.schedules import crontab

from worker import app

app.conf.beat_schedule = {
    "start-due-campaigns": {
        "task": "newsletter.start_due_campaigns",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Every five minutes: each time zone's digest goes out within five minutes of
    # its local send time, and a second beat (or a restart) changes nothing.
    "plan-weekly-digest": {
        "task": "newsletter.plan_weekly_digest",
        "schedule": 300.0,
        "options": {"expires": 290},
    },
    "recover-stale-deliveries": {
        "task": "newsletter.recover_stale_deliveries",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "expire-pending-signups": {
        "task": "newsletter.expire_pending_signups",
        "schedule": crontab(minute="17", hour="3"),
    },
    "ingest-feeds": {
        "task": "newsletter.ingest_feeds",
        "schedule": crontab(minute="*/30"),
        # A poll that waited longer than this is stale: the next one is due soon.
        "options": {"expires": 25 * 60},
    },
}

__all__ = ["app"]
