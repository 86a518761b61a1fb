"""A real campaign end to end, measured: how fast, how much CPU, how much memory.

    uv run python benchmarks/send.py --recipients 10000 [--workers 2] [--no-dkim]

A weekly digest of about 40 KB of HTML over several topic variants goes to N
subscribers through everything production uses: PostgreSQL for the ledger
(127.0.0.1:5432), Redis as the broker (127.0.0.1:6379), Celery worker processes,
DKIM RSA-2048 signing, and SMTP to Postfix's smtp-sink on loopback (see
sink.py). It checks that the sink received exactly N messages and prints, as
its last line, one JSON object with recipients, sent, seconds, msgs_per_s,
worker_cpu_us_per_msg, peak_rss_mb (largest worker process) and
time_to_first_send_s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUN = uuid.uuid4().hex[:8]
os.environ.update(
    DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/newsletter_bench_{RUN}",
    REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
    NEWSLETTER_CELERY_QUEUE=f"bench-{RUN}",
    NEWSLETTER_SECRET_KEY="benchmark-secret",  # noqa: S106  (a throwaway database)
    NEWSLETTER_BASE_URL="https://news.example.org",
    NEWSLETTER_DATA_DIR=tempfile.mkdtemp(prefix="bench-send-"),
)

import psycopg  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from benchmarks.keys import rsa_pem  # noqa: E402
from benchmarks.sink import SmtpSink  # noqa: E402
from newsletter.campaigns import runner  # noqa: E402
from newsletter.content.models import Topic  # noqa: E402
from newsletter.content.schemas import ArticleIn  # noqa: E402
from newsletter.content.service import upsert_article  # noqa: E402
from newsletter.db import make_engine, utcnow  # noqa: E402
from newsletter.subscribers.models import Subscriber, subscriber_topics  # noqa: E402

PARAGRAPH = (
    "A spine MRI shows the vertebrae, the discs between them and the nerves that leave "
    "the spinal canal. In the lumbar spine, the five lowest vertebrae, a radiologist looks "
    "for disc desiccation, bulges and narrowing that could press on a nerve root. "
)


def _admin(sql: str) -> None:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        db.execute(sql)


def _setup(recipients: int) -> None:
    from alembic import command
    from alembic.config import Config

    _admin(f"CREATE DATABASE newsletter_bench_{RUN}")
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
    engine = make_engine(os.environ["DATABASE_URL"])
    with sessionmaker(engine)() as session:
        topics = list(session.scalars(select(Topic).order_by(Topic.position)))
        now = utcnow()
        for topic in topics:
            for n in range(4):
                upsert_article(
                    session,
                    ArticleIn(
                        title=f"{topic.name}: what the images show, part {n + 1}",
                        canonical_url=f"https://www.example-painclinic.org/a/{topic.slug}-{n}",
                        summary=PARAGRAPH * 3,
                        body_markdown=PARAGRAPH,
                        image_url=f"https://www.example-painclinic.org/i/{topic.slug}-{n}.jpg",
                        image_alt=f"Illustration for {topic.name}",
                        author="Dr. Zoë Ortiz",
                        published_at=now - timedelta(days=1 + n),
                        topics=[topic.slug],
                    ),
                    source="api",
                )
        combos = [topics[i : i + 2] for i in range(len(topics) - 1)] + [topics[:3], topics[2:]]
        rows, links = [], []
        for i in range(recipients):
            rows.append(
                {
                    "id": i + 1,
                    "email": f"reader{i}@bench.example.org",
                    "email_hash": f"{i:064x}",
                    "name": f"Reader {i}" if i % 4 else "",
                    "timezone": "UTC",
                    "status": "active",
                    "digest_paused": False,
                    "confirmation_nonce": "0",
                    "created_at": now,
                    "confirmed_at": now,
                }
            )
            links.extend(
                {"subscriber_id": i + 1, "topic_id": t.id} for t in combos[i % len(combos)]
            )
        for start in range(0, len(rows), 5000):
            session.execute(insert(Subscriber), rows[start : start + 5000])
        for start in range(0, len(links), 10000):
            session.execute(insert(subscriber_topics), links[start : start + 10000])
        session.commit()
    engine.dispose()


def _proc_stat(pid: int) -> tuple[float, float, float]:
    """(cpu seconds, peak RSS MB, of which kernel seconds) of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    kernel = int(fields[12]) / ticks
    peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return cpu, peak, kernel


def _tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = [pid]
    for child in children:
        found.extend(_tree(int(child)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (prefork)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--no-dkim", action="store_true")
    args = parser.parse_args()

    env = dict(os.environ, NEWSLETTER_CAMPAIGN_BATCH_SIZE=str(args.batch_size))
    if not args.no_dkim:
        key = Path(os.environ["NEWSLETTER_DATA_DIR"]) / "dkim.pem"
        key.write_bytes(rsa_pem())
        env["NEWSLETTER_DKIM_PRIVATE_KEY_PATH"] = str(key)
    _setup(args.recipients)
    with SmtpSink() as sink:
        env["SMTP_URL"] = f"smtp://127.0.0.1:{sink.port}"
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", "worker", "--loglevel", "WARNING",
             "--concurrency", str(args.workers), "--queues", env["NEWSLETTER_CELERY_QUEUE"],
             "--without-mingle", "--without-gossip", "--without-heartbeat"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        try:
            engine = make_engine(os.environ["DATABASE_URL"])
            factory = sessionmaker(engine)
            while len(_tree(worker.pid)) < args.workers + 1:
                time.sleep(0.05)
            time.sleep(2)  # let the pool import everything before the clock starts
            before = [_proc_stat(pid) for pid in _tree(worker.pid)]
            cpu_before = sum(s[0] for s in before)
            kernel_before = sum(s[2] for s in before)
            now = utcnow()
            with factory() as session:
                campaign = runner.create_digest_campaign(
                    session, start=now - timedelta(days=7), end=now
                )
                session.flush()
                runner.start_campaign(session, campaign.id)
                session.commit()
            started = time.monotonic()
            first = None
            while (count := sink.count()) < args.recipients:
                if first is None and count:
                    first = time.monotonic() - started
                if time.monotonic() - started > 3600:
                    raise SystemExit(f"only {count} of {args.recipients} arrived")
                time.sleep(0.01)
            seconds = time.monotonic() - started
            stats = [_proc_stat(pid) for pid in _tree(worker.pid)]
            cpu = sum(s[0] for s in stats) - cpu_before
            kernel = sum(s[2] for s in stats) - kernel_before
            result = {
                "recipients": args.recipients,
                "sent": sink.count(),
                "seconds": round(seconds, 2),
                "msgs_per_s": round(args.recipients / seconds),
                "worker_cpu_us_per_msg": round(cpu / args.recipients * 1e6),
                # Loopback TCP runs the receiving side's work in the sender's context,
                # so part of this kernel time is the sink's, charged to the worker.
                "worker_kernel_us_per_msg": round(kernel / args.recipients * 1e6),
                "peak_rss_mb": round(max(s[1] for s in stats), 1),
                "time_to_first_send_s": round(first or seconds, 2),
                "workers": args.workers,
                "dkim": not args.no_dkim,
            }
            assert result["sent"] == args.recipients, result
        finally:
            worker.terminate()
            worker.wait(30)
            engine.dispose()
            _admin(f"DROP DATABASE IF EXISTS newsletter_bench_{RUN} WITH (FORCE)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
