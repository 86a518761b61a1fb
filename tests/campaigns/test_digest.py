"""The weekly digest: right articles per subscriber, rendered once per variant."""

from __future__ import annotations

import re
import uuid
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from unittest import mock

import pytest
from sqlalchemy.orm import Session

from newsletter.campaigns import digest
from newsletter.campaigns.digest import (
    DigestPreviewError,
    last_week,
    load_edition,
    preview_digest,
    recipient_of,
)
from newsletter.config import Settings
from newsletter.db import utcnow
from newsletter.subscribers.tokens import TokenSigner, signer_for
from tests.factories import make_article, make_subscriber


@pytest.fixture
def signer(settings: Settings) -> TokenSigner:
    return signer_for(settings.effective_secret_key, settings.confirm_token_max_age_seconds)


def _parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=default_policy).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()


def _edition(session: Session, settings: Settings) -> digest.DigestEdition:
    start, end = last_week(utcnow())
    return load_edition(session, start=start, end=end, settings=settings)


def test_a_subscriber_gets_this_weeks_articles_on_their_topics_only(
    session: Session, settings: Settings, signer: TokenSigner
) -> None:
    make_article(session, title="Open or closed MRI?", topics=["spine-mri"])
    make_article(session, title="Ice-pick headaches explained", topics=["headaches"])
    make_article(session, title="Signs sciatica is improving", topics=["sciatica-back-pain"])
    make_article(session, title="An old MRI article", topics=["spine-mri"], days_ago=9)
    reader = make_subscriber(session, name="Ada", topics=("spine-mri", "headaches"))

    message = _edition(session, settings).message_for(recipient_of(reader), signer=signer)
    assert message is not None
    parsed = _parse(message.data)
    text, html = _parts(parsed)
    assert parsed["Subject"] == "2 new articles on Spine & MRI and Headaches"
    for part in (text, html):
        assert "Open or closed MRI?" in part and "Ice-pick headaches explained" in part
        assert "sciatica" not in part.lower() and "An old MRI article" not in part
        assert "Hello Ada," in part
    assert html.index("Open or closed MRI?") < html.index("Ice-pick headaches explained")


def test_no_new_articles_on_their_topics_means_no_digest(
    session: Session, settings: Settings, signer: TokenSigner
) -> None:
    make_article(session, topics=["headaches"])
    reader = make_subscriber(session, topics=("neck-pain",))
    assert _edition(session, settings).message_for(recipient_of(reader), signer=signer) is None
    with pytest.raises(DigestPreviewError, match="no new articles"):
        preview_digest(session, reader.email, now=utcnow(), settings=settings, signer=signer)


def test_an_article_on_two_followed_topics_is_shown_once(
    session: Session, settings: Settings, signer: TokenSigner
) -> None:
    make_article(session, title="MRI and sciatica", topics=["spine-mri", "sciatica-back-pain"])
    reader = make_subscriber(session, topics=("spine-mri", "sciatica-back-pain"))
    message = _edition(session, settings).message_for(recipient_of(reader), signer=signer)
    assert message is not None
    _, html = _parts(_parse(message.data))
    assert html.count(">MRI and sciatica</a>") == 1


def test_each_variant_is_rendered_once_and_personalised_per_recipient(
    session: Session, settings: Settings, signer: TokenSigner
) -> None:
    make_article(session, topics=["spine-mri"])
    make_article(session, topics=["headaches"])
    readers = [
        make_subscriber(session, name=name, topics=topics)
        for name, topics in [
            ("Ada", ("spine-mri",)),
            ("", ("spine-mri",)),
            ("Bo <b>&", ("spine-mri", "neck-pain")),  # neck-pain has nothing new: same variant
            ("Cy", ("spine-mri", "headaches")),
        ]
    ]
    edition = _edition(session, settings)
    with mock.patch.object(digest, "render_digest", wraps=digest.render_digest) as render:
        messages = [edition.message_for(recipient_of(reader), signer=signer) for reader in readers]
    assert render.call_count == 2
    assert len(edition.variants) == 2

    greetings, unsubscribe_links = [], set()
    for reader, message in zip(readers, messages, strict=True):
        assert message is not None
        parsed = _parse(message.data)
        text, html = _parts(parsed)
        greetings.append(re.search(r"Hello[^,]*,", text).group(0))  # type: ignore[union-attr]
        assert parsed["To"] == reader.email
        assert signer.manage_token(reader.id) in parsed["List-Unsubscribe"]
        assert f"/p/{signer.manage_token(reader.id)}" in html
        unsubscribe_links.add(parsed["List-Unsubscribe"])
        assert "%%NL_" not in text + html
    assert greetings == ["Hello Ada,", "Hello,", "Hello Bo <b>&,", "Hello Cy,"]
    assert len(unsubscribe_links) == 4
    _, html = _parts(_parse(messages[2].data))  # type: ignore[union-attr]
    assert "Hello Bo &lt;b&gt;&amp;," in html


def test_preview_matches_what_the_subscriber_would_receive(
    session: Session, settings: Settings, signer: TokenSigner
) -> None:
    make_article(session, title="Preparing for your scan", topics=["spine-mri"])
    reader = make_subscriber(session, topics=("spine-mri",))
    preview = preview_digest(session, reader.email, now=utcnow(), settings=settings, signer=signer)
    parsed = _parse(preview.data)
    assert parsed["To"] == reader.email
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["List-Id"].endswith("<digest.example.org>")
    assert "Preparing for your scan" in _parts(parsed)[1]
    with pytest.raises(DigestPreviewError, match="no subscriber"):
        preview_digest(
            session, "nobody@example.org", now=utcnow(), settings=settings, signer=signer
        )


def test_a_variant_rendered_by_one_process_is_reused_by_the_next(
    session: Session, settings: Settings, signer: TokenSigner
) -> None:
    import redis as redis_lib

    from newsletter.rendering.cache import RedisRenderCache

    make_article(session, topics=["spine-mri"])
    reader = make_subscriber(session, topics=("spine-mri",))
    cache = RedisRenderCache(redis_lib.Redis.from_url(settings.effective_redis_url), ttl_seconds=60)
    key = f"test-{uuid.uuid4().hex}"
    first, second = _edition(session, settings), _edition(session, settings)
    for edition in (first, second):
        edition.render_cache, edition.cache_key = cache, key
    with mock.patch.object(digest, "render_digest", wraps=digest.render_digest) as render:
        one = first.message_for(recipient_of(reader), signer=signer)
        two = second.message_for(recipient_of(reader), signer=signer)
    assert render.call_count == 1
    assert one is not None and two is not None
    assert _parts(_parse(one.data))[1] == _parts(_parse(two.data))[1]


def test_an_optional_mailto_follows_the_one_click_url(
    session: Session, settings: Settings, signer: TokenSigner
) -> None:
    make_article(session, topics=["spine-mri"])
    reader = make_subscriber(session, topics=("spine-mri",))
    with_mailto = settings.model_copy(update={"unsubscribe_mailto": "leave@example.org"})
    start, end = last_week(utcnow())
    edition = load_edition(session, start=start, end=end, settings=with_mailto)
    message = edition.message_for(recipient_of(reader), signer=signer)
    assert message is not None
    header = _parse(message.data)["List-Unsubscribe"]
    assert re.fullmatch(
        r"<https://news\.example\.org/u/[^>]+>,\s*<mailto:leave@example\.org\?subject=unsubscribe>",
        header,
    )
    raw_header = message.data.split(b"List-Unsubscribe:", 1)[1].split(b"\r\nList-Unsubscribe-Post")[
        0
    ]
    assert b"=?" not in raw_header and all(len(line) <= 998 for line in raw_header.split(b"\r\n"))
