"""Feed ingestion against real feeds served over HTTP on loopback."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.content import ingest
from newsletter.content.ingest import (
    FeedError,
    IngestReport,
    ingest_configured_feeds,
    ingest_feed,
)
from newsletter.content.models import Article, Feed
from newsletter.content.service import UnknownTopicsError
from tests.conftest import Cli, free_port

FEEDS = Path(__file__).parent / "feeds"
SITE = "https://www.example-painclinic.org"


@dataclass
class Route:
    body: bytes
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None


class FeedServer:
    """An HTTP server on 127.0.0.1 with conditional GET, and the requests it saw."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers.items())))
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                fresh = (route.etag and self.headers.get("If-None-Match") == route.etag) or (
                    route.last_modified
                    and self.headers.get("If-Modified-Since") == route.last_modified
                )
                self.send_response(304 if fresh else route.status)
                if route.etag:
                    self.send_header("ETag", route.etag)
                if route.last_modified:
                    self.send_header("Last-Modified", route.last_modified)
                body = b"" if fresh else route.body
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, feed_file: str, **options: Any) -> str:
        """Serve tests/content/feeds/<feed_file> at `path`; returns its URL."""
        self.routes[path] = Route((FEEDS / feed_file).read_bytes(), **options)
        return self.url(path)

    def requests_for(self, path: str) -> list[dict[str, str]]:
        return [headers for seen, headers in self.requests if seen == path]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


@pytest.fixture
def server() -> Iterator[FeedServer]:
    feeds = FeedServer()
    yield feeds
    feeds.close()


def _article(session: Session, slug: str) -> Article:
    url = f"{SITE}/articles/{slug}"
    article = session.scalar(select(Article).where(Article.canonical_url == url))
    assert article is not None, url
    return article


def _count(session: Session) -> int:
    return session.scalar(select(func.count(Article.id))) or 0


def _feed(session: Session, url: str) -> Feed | None:
    return session.scalar(select(Feed).where(Feed.url == url))


def test_rss_maps_categories_to_topics_and_skips_what_it_cannot_publish(
    session: Session, server: FeedServer
) -> None:
    url = server.serve("/rss.xml", "rss20.xml", etag='"rss-1"')

    report = ingest_feed(session, url)

    assert (report.created, report.updated, report.not_modified) == (2, 0, False)
    assert report.skipped == {"link not https": 1, "no matching topic": 1}
    assert any("plain-http" in problem for problem in report.problems)
    assert _count(session) == 2

    mri = _article(session, "lumbar-mri")
    assert [topic.slug for topic in mri.topics] == ["spine-mri"]  # "Spine & MRI", by name
    assert mri.title == "What a lumbar MRI shows"
    assert mri.author == "Dr. Lena Ortiz"
    assert mri.published_at == datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    assert mri.summary == "The lower back has five lumbar vertebrae."
    assert "<h2>Five vertebrae</h2>" in mri.body_html
    assert mri.image_url == f"{SITE}/images/lumbar-mri.jpg"
    # The media:description is the image's alt text and stays out of the article text.
    assert mri.image_alt == "Side view of a lumbar spine on an MRI monitor"
    assert "monitor" not in mri.body_html + mri.summary
    assert mri.source == "feed"

    headache = _article(session, "ice-pick-brief")
    assert [topic.slug for topic in headache.topics] == ["headaches"]  # by slug
    assert headache.body_html == "<p>Short, sharp jabs of pain that last a few seconds.</p>"
    assert headache.image_url == f"{SITE}/images/ice-pick.jpg"  # an image enclosure
    assert headache.image_alt == "Ice-pick headaches in brief"  # no caption: the title

    feed = _feed(session, url)
    assert feed is not None and feed.topics == []
    assert feed.etag == '"rss-1"' and feed.last_fetched_at is not None
    assert feed.last_status == "ok: " + report.describe()
    assert server.requests_for("/rss.xml")[0]["User-Agent"].startswith("newsletter/")


def test_atom_entries_become_articles(session: Session, server: FeedServer) -> None:
    url = server.serve("/atom.xml", "atom.xml", content_type="application/atom+xml")

    report = ingest_feed(session, url)

    assert (report.created, report.updated, report.skipped) == (2, 0, {})
    neck = _article(session, "neck-posture")
    assert neck.title == "Neck pain & posture"
    # By slug ("neck-pain") and by name ignoring case ("Pain Treatments").
    assert [topic.slug for topic in neck.topics] == ["neck-pain", "pain-treatments"]
    assert neck.published_at == datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    assert neck.author == "Dr. Samuel Okafor"
    assert neck.body_html == "<p>The cervical spine has <strong>seven</strong> vertebrae.</p>"
    assert neck.summary == "How the way you sit can strain the seven cervical vertebrae."
    assert neck.image_url == f"{SITE}/images/neck-posture.jpg"  # media:thumbnail
    assert neck.image_alt == "Neck pain & posture"

    open_mri = _article(session, "open-mri")
    assert [topic.slug for topic in open_mri.topics] == ["spine-mri"]  # a category's label
    assert open_mri.published_at == datetime(2026, 11, 20, 7, 30, tzinfo=UTC)  # <updated>
    assert open_mri.body_html == "A wider opening, less detailed pictures."
    assert open_mri.image_url is None and open_mri.image_alt == ""


def test_given_topics_are_remembered_and_used_for_every_entry(
    session: Session, server: FeedServer
) -> None:
    url = server.serve("/rss.xml", "rss20.xml")

    first = ingest_feed(session, url, topic_slugs=["pain-treatments"])

    # The entry whose category names no topic is published under the given one.
    assert (first.created, first.skipped) == (3, {"link not https": 1})
    assert [topic.slug for topic in _article(session, "horoscopes").topics] == ["pain-treatments"]
    assert [topic.slug for topic in _article(session, "lumbar-mri").topics] == ["pain-treatments"]
    feed = _feed(session, url)
    assert feed is not None and [topic.slug for topic in feed.topics] == ["pain-treatments"]

    again = ingest_feed(session, url)
    assert (again.created, again.updated) == (0, 3)
    assert [topic.slug for topic in _article(session, "lumbar-mri").topics] == ["pain-treatments"]


def test_unknown_topics_are_refused_before_anything_is_fetched(
    session: Session, server: FeedServer
) -> None:
    url = server.serve("/rss.xml", "rss20.xml")

    with pytest.raises(UnknownTopicsError, match="astrology"):
        ingest_feed(session, url, topic_slugs=["astrology"])

    assert server.requests == [] and _feed(session, url) is None


def test_reingest_updates_without_duplicates(session: Session, server: FeedServer) -> None:
    url = server.serve("/rss.xml", "rss20.xml")
    ingest_feed(session, url)
    server.routes["/rss.xml"].body = server.routes["/rss.xml"].body.replace(
        b"What a lumbar MRI shows", b"What a lumbar MRI can show"
    )

    again = ingest_feed(session, url)

    assert (again.created, again.updated) == (0, 2)
    assert _count(session) == 2
    assert _article(session, "lumbar-mri").title == "What a lumbar MRI can show"


def test_an_unchanged_feed_costs_one_conditional_request_and_changes_nothing(
    session: Session, server: FeedServer
) -> None:
    modified = "Tue, 24 Nov 2026 10:00:00 GMT"
    url = server.serve("/rss.xml", "rss20.xml", etag='"v1"', last_modified=modified)
    ingest_feed(session, url)
    before = {a.canonical_url: (a.title, a.updated_at) for a in session.scalars(select(Article))}
    server.requests.clear()

    report = ingest_feed(session, url)

    assert report == IngestReport(not_modified=True)
    assert report.describe() == "not modified since the last fetch"
    assert len(server.requests) == 1
    headers = server.requests_for("/rss.xml")[0]
    assert headers["If-None-Match"] == '"v1"'
    assert headers["If-Modified-Since"] == modified
    after = {a.canonical_url: (a.title, a.updated_at) for a in session.scalars(select(Article))}
    assert after == before
    feed = _feed(session, url)
    assert feed is not None and (feed.etag, feed.last_modified) == ('"v1"', modified)
    assert feed.last_status == "ok: not modified since the last fetch"


def test_a_malformed_feed_raises_and_writes_nothing(session: Session, server: FeedServer) -> None:
    url = server.serve("/broken.xml", "malformed.xml")

    with pytest.raises(FeedError, match="not a valid RSS or Atom feed"):
        ingest_feed(session, url, topic_slugs=["spine-mri"])

    assert _count(session) == 0
    assert _feed(session, url) is None


def test_a_feed_gone_bad_keeps_its_articles_and_validators(
    session: Session, server: FeedServer
) -> None:
    url = server.serve("/rss.xml", "rss20.xml", etag='"good"')
    ingest_feed(session, url)
    titles = sorted(session.scalars(select(Article.title)))
    server.routes["/rss.xml"] = Route((FEEDS / "malformed.xml").read_bytes(), etag='"bad"')

    with pytest.raises(FeedError):
        ingest_feed(session, url)

    assert sorted(session.scalars(select(Article.title))) == titles
    feed = _feed(session, url)
    assert feed is not None and feed.etag == '"good"'


def test_an_http_error_raises_feed_error(session: Session, server: FeedServer) -> None:
    url = server.serve("/rss.xml", "rss20.xml", status=500)

    with pytest.raises(FeedError, match="HTTP 500"):
        ingest_feed(session, url)

    assert _count(session) == 0 and _feed(session, url) is None


def test_a_network_error_raises_feed_error(session: Session) -> None:
    url = f"http://127.0.0.1:{free_port()}/rss.xml"  # nothing listens there

    with pytest.raises(FeedError, match="could not fetch"):
        ingest_feed(session, url)


def test_only_http_feed_urls_are_fetched(session: Session) -> None:
    with pytest.raises(FeedError, match="http"):
        ingest_feed(session, f"file://{FEEDS / 'rss20.xml'}")


def test_a_failure_half_way_rolls_back_every_article_of_the_run(
    session: Session, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.serve("/rss.xml", "rss20.xml", etag='"v1"')
    real = ingest.upsert_article
    calls = []

    def fail_on_second(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "upsert_article", fail_on_second)

    with pytest.raises(RuntimeError):
        ingest_feed(session, url)

    assert len(calls) == 2 and _count(session) == 0


def test_html_from_a_feed_is_sanitised(session: Session, server: FeedServer) -> None:
    url = server.serve("/script.xml", "script.xml")

    ingest_feed(session, url)

    article = _article(session, "sciatica-script")
    stored = article.body_html + article.summary
    for bad in ("<script", "alert", "document.cookie", "onclick", "onerror", "javascript:",
                "<iframe", "<style"):  # fmt: skip
        assert bad not in stored
    assert "<p>A herniated disc can press on a nerve root.</p>" in article.body_html
    assert article.summary == "Leg pain from the lower back."


def _units(session: Session) -> Callable[[], AbstractContextManager[Session]]:
    """Units of work inside the test's transaction: each a savepoint, undone on error."""

    @contextmanager
    def unit() -> Iterator[Session]:
        with session.begin_nested():
            yield session

    return unit


def test_the_http_request_runs_outside_any_transaction(
    session_factory: sessionmaker[Session], server: FeedServer
) -> None:
    url = server.serve("/rss.xml", "rss20.xml")
    sessions: list[Session] = []
    in_transaction_during_fetch: list[bool] = []

    @contextmanager
    def unit() -> Iterator[Session]:
        with session_factory() as session:
            sessions.append(session)
            yield session
            session.commit()

    def fetch(url: str, *, etag: str | None, modified: str | None) -> ingest.FeedResponse:
        in_transaction_during_fetch.append(any(s.in_transaction() for s in sessions))
        return ingest.fetch_feed(url, etag=etag, modified=modified)

    report = ingest.ingest_feed_in_steps(unit, url, topic_slugs=["spine-mri"], fetch=fetch)
    assert len(sessions) == 2 and in_transaction_during_fetch == [False]
    assert report.created == 3


def test_configured_feeds_are_polled_and_one_failure_stops_no_other(
    session: Session, server: FeedServer
) -> None:
    bad = server.serve("/bad.xml", "rss20.xml")
    good = server.serve("/good.xml", "atom.xml", content_type="application/atom+xml")
    ingest_feed(session, bad, topic_slugs=["headaches"])
    ingest_feed(session, good)
    server.routes["/bad.xml"].status = 500
    server.routes["/good.xml"].body = server.routes["/good.xml"].body.replace(
        b"Open MRI and claustrophobia", b"Open MRI, closed MRI"
    )

    results = ingest_configured_feeds(_units(session))

    assert results[bad] == f"error: could not fetch {bad}: HTTP 500 Internal Server Error"
    assert results[good] == IngestReport(created=0, updated=2)
    assert _article(session, "open-mri").title == "Open MRI, closed MRI"
    bad_feed = _feed(session, bad)
    assert bad_feed is not None and bad_feed.last_status.startswith("error: could not fetch")
    good_feed = _feed(session, good)
    assert good_feed is not None and good_feed.last_status == "ok: 0 created, 2 updated"


def test_an_unexpected_failure_is_recorded_and_undone(
    session: Session, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.serve("/rss.xml", "rss20.xml")
    session.add(Feed(url=url))
    session.flush()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(ingest, "upsert_article", broken)

    assert ingest_configured_feeds(_units(session)) == {url: "error: unexpected RuntimeError"}
    feed = _feed(session, url)
    assert feed is not None and feed.last_status == "error: unexpected RuntimeError"
    assert _count(session) == 0


def test_the_ingest_feeds_task_runs_every_feed_and_is_scheduled(
    session: Session, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import scheduler
    from newsletter import tasks

    url = server.serve("/rss.xml", "rss20.xml")
    ingest_feed(session, url, topic_slugs=["spine-mri"])

    monkeypatch.setattr(tasks, "unit_of_work", _units(session))

    assert tasks.ingest_feeds() == {url: "0 created, 3 updated, 1 skipped (1 link not https)"}
    entry = scheduler.app.conf.beat_schedule["ingest-feeds"]
    assert entry["task"] == tasks.ingest_feeds.name == "newsletter.ingest_feeds"
    assert entry["schedule"].minute == {0, 30}


def test_cli_ingests_a_feed_and_explains_failures(cli: Cli, server: FeedServer) -> None:
    url = server.serve("/rss.xml", "rss20.xml", etag='"v1"')

    done = cli("content", "ingest-feed", url, "--topic", "spine-mri", "--topic", "headaches")
    assert f"{url}: 3 created, 0 updated, 1 skipped (1 link not https)" in done.stdout
    assert "plain-http" in done.stderr
    assert "What a lumbar MRI shows" in cli("content", "list").stdout
    assert "not modified" in cli("content", "ingest-feed", url).stdout

    unknown = cli("content", "ingest-feed", url, "--topic", "astrology", ok=False)
    assert unknown.returncode == 1 and "unknown topic(s): astrology" in unknown.stderr
    broken = cli("content", "ingest-feed", server.url("/missing.xml"), ok=False)
    assert broken.returncode == 1 and "HTTP 404" in broken.stderr
