"""Render once, personalise cheaply: what a digest campaign costs to build.

    uv run python benchmarks/render.py [--recipients 10000] [--dkim]

A digest of 10,000 recipients over 8 topic combinations: each variant is
rendered by Jinja2 and inlined by premailer once (timed per variant); then
every recipient's message is built from its variant (timed per recipient).
No database: the articles and subscribers are made in memory, so the figures
are the rendering and MIME cost alone. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NEWSLETTER_SECRET_KEY", "benchmark-secret")
os.environ.setdefault("NEWSLETTER_BASE_URL", "https://news.example.org")
os.environ.setdefault("NEWSLETTER_DATA_DIR", tempfile.mkdtemp(prefix="bench-render-"))

from newsletter.campaigns import digest
from newsletter.config import get_settings
from newsletter.content.models import Article, Topic
from newsletter.rendering.personal import Recipient
from newsletter.subscribers.tokens import signer_for

TOPICS = [
    ("spine-mri", "Spine & MRI"),
    ("sciatica-back-pain", "Sciatica & back pain"),
    ("headaches", "Headaches"),
    ("neck-pain", "Neck pain"),
    ("pain-treatments", "Pain treatments"),
]
SUMMARY = (
    "An MRI of the spine shows the discs, nerves and soft tissue between the vertebrae. "
    "We explain what the cervical, thoracic and lumbar images can reveal, from disc "
    "desiccation to spinal cord compression, and how to prepare for the scan."
)


def build_edition(now: datetime) -> digest.DigestEdition:
    topics = [
        Topic(id=i + 1, slug=slug, name=name, description="", position=i)
        for i, (slug, name) in enumerate(TOPICS)
    ]
    articles_by_topic: dict[int, list[Article]] = {}
    article_id = itertools.count(1)
    for topic in topics:
        articles_by_topic[topic.id] = [
            Article(
                id=next(article_id),
                canonical_url=f"https://www.example-painclinic.org/articles/{topic.slug}-{n}",
                title=f"{topic.name}: what your doctor looks for, part {n}",
                summary=SUMMARY,
                image_url=f"https://www.example-painclinic.org/images/{topic.slug}-{n}.jpg",
                image_alt=f"Illustration for {topic.name}, part {n}",
                author="Dr. Zoë Ortiz",
                published_at=now - timedelta(days=n),
                topics=[topic],
            )
            for n in range(1, 4)
        ]
    return digest.DigestEdition(
        start=now - timedelta(days=7),
        end=now,
        topics=topics,
        articles_by_topic=articles_by_topic,
        settings=get_settings(),
        campaign_id="bench",
    )


def combinations(topics: list[Topic], count: int) -> list[list[Topic]]:
    combos = [list(c) for size in (1, 2, 3) for c in itertools.combinations(topics, size)]
    return combos[:: max(1, len(combos) // count)][:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--variants", type=int, default=8)
    parser.add_argument("--dkim", action="store_true", help="also DKIM-sign (RSA-2048)")
    args = parser.parse_args()

    settings = get_settings()
    signer = signer_for(settings.effective_secret_key, settings.confirm_token_max_age_seconds)
    now = datetime.now(UTC)
    edition = build_edition(now)
    combos = combinations(list(edition.topics), args.variants)
    subscribers = [
        Recipient(
            id=i + 1,
            email=f"reader{i}@example.org",
            name="" if i % 5 == 0 else f"Reader {i}",
            topic_ids=tuple(topic.id for topic in combos[i % len(combos)]),
        )
        for i in range(args.recipients)
    ]

    render_ms = []
    for combo in combos:
        key = edition.variant_key([topic.id for topic in combo])
        started = time.perf_counter()
        edition.template_for(key)
        render_ms.append((time.perf_counter() - started) * 1000)

    dkim_sign = None
    if args.dkim:
        from benchmarks.keys import rsa_signer  # generated key, see benchmarks/keys.py

        dkim_sign = rsa_signer().sign  # with the body hash the template computed

    sizes = []
    with mock.patch.object(digest, "render_digest", side_effect=AssertionError("re-render")):
        started = time.perf_counter()
        for subscriber in subscribers:
            message = edition.message_for(subscriber, signer=signer)
            assert message is not None
            data = (
                dkim_sign(message.data, body_hash=message.body_hash) if dkim_sign else message.data
            )
            sizes.append(len(data))
        per_recipient_us = (time.perf_counter() - started) / len(subscribers) * 1e6

    result = {
        "recipients": args.recipients,
        "variants": len(edition.variants),
        "render_inline_ms_per_variant_mean": round(statistics.mean(render_ms), 1),
        "render_inline_ms_per_variant_max": round(max(render_ms), 1),
        "per_recipient_us": round(per_recipient_us, 1),
        "dkim": bool(args.dkim),
        "message_kb_mean": round(statistics.mean(sizes) / 1024, 1),
        "python": platform.python_version(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
