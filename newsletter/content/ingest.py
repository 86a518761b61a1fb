"""Articles from RSS/Atom feeds and from folders of Markdown files.

Every article still goes in through `upsert_article`, so a feed polled again or a
file imported again updates its row instead of adding a second one.
"""

from __future__ import annotations

import calendar
import http.client
import io
import logging
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit
from xml.parsers import expat

import feedparser
import frontmatter
import yaml
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.content.html import first_sentences, html_to_text, sanitise_html
from newsletter.content.models import Article, Feed, Topic
from newsletter.content.schemas import ArticleIn, AwareDatetime, https_url
from newsletter.content.service import ContentError, resolve_topics, upsert_article
from newsletter.db import utcnow

log = logging.getLogger(__name__)

USER_AGENT = f"newsletter/{version('newsletter')} (feed ingestion)"
FETCH_TIMEOUT_SECONDS = 20.0
# A feed is a few hundred kilobytes; anything far bigger is a mistake or an attack.
MAX_FEED_BYTES = 10 * 1024 * 1024
SUMMARY_LIMIT = 1000


class FeedError(ContentError):
    """A feed that could not be fetched or is not RSS or Atom; nothing was written."""


@dataclass(frozen=True)
class FeedResponse:
    """What a fetch brought back: a 200 with the body, or a 304 with none."""

    status: int
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None


class FeedFetcher(Protocol):
    def __call__(self, url: str, *, etag: str | None, modified: str | None) -> FeedResponse:
        """GET `url` with the cache validators; FeedError unless 200 or 304."""
        ...


@dataclass
class IngestReport:
    """What one feed run or folder import did; skip reasons are short strings, counted."""

    created: int = 0
    updated: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    not_modified: bool = False
    problems: list[str] = field(default_factory=list)

    def skip(self, reason: str, problem: str | None = None) -> None:
        """Count one skipped item under `reason`, with its details if any."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if problem:
            self.problems.append(problem)

    def describe(self) -> str:
        """One line for a person: counts, and the skip reasons."""
        if self.not_modified:
            return "not modified since the last fetch"
        text = f"{self.created} created, {self.updated} updated"
        skipped = sum(self.skipped.values())
        if skipped:
            reasons = ", ".join(f"{count} {why}" for why, count in sorted(self.skipped.items()))
            text += f", {skipped} skipped ({reasons})"
        return text


# -- feeds ---------------------------------------------------------------------


def fetch_feed(
    url: str,
    *,
    etag: str | None,
    modified: str | None,
    timeout: float = FETCH_TIMEOUT_SECONDS,
) -> FeedResponse:
    """GET `url` over HTTP(S) with the cache validators; FeedError unless 200 or 304."""
    # feedparser can fetch by itself but has no timeout, so one stalled server
    # would hold a worker (and its transaction) for ever; urllib has one.
    _check_feed_url(url)
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.1",
    }
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 -- scheme checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 -- same
            body = response.read(MAX_FEED_BYTES + 1)
            if len(body) > MAX_FEED_BYTES:
                raise FeedError(f"{url} is larger than {MAX_FEED_BYTES // 1024 // 1024} MB")
            return FeedResponse(
                status=200,
                body=body,
                content_type=response.headers.get("Content-Type", ""),
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
            )
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 304:
            return FeedResponse(
                status=304, etag=e.headers.get("ETag"), last_modified=e.headers.get("Last-Modified")
            )
        raise FeedError(f"could not fetch {url}: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise FeedError(f"could not fetch {url}: {e.reason}") from e
    except (OSError, http.client.HTTPException) as e:
        raise FeedError(f"could not fetch {url}: {e or type(e).__name__}") from e


def _check_feed_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise FeedError(f"feed URL must be an absolute http(s) URL: {url!r}")


def feed_validators(session: Session, url: str) -> tuple[str | None, str | None]:
    """The (ETag, Last-Modified) stored for `url`, for a conditional fetch."""
    _check_feed_url(url)
    feed = session.scalar(select(Feed).where(Feed.url == url))
    return (feed.etag, feed.last_modified) if feed else (None, None)


def apply_feed(
    session: Session,
    url: str,
    response: FeedResponse,
    *,
    topic_slugs: Sequence[str] | None = None,
    now: datetime | None = None,
) -> IngestReport:
    """Upsert the entries of a fetched feed as articles, and remember its validators.

    Articles get `topic_slugs` (remembered on the feed), else the feed's stored
    topics, else the topics their categories name. Nothing is written when the
    parse fails: the feed is read completely before the first write, and all
    articles of a run go in one savepoint.
    """
    _check_feed_url(url)
    given = resolve_topics(session, topic_slugs) if topic_slugs else None
    entries = [] if response.status == 304 else _parse_feed(url, response)
    feed = session.scalar(select(Feed).where(Feed.url == url))
    if feed is None:
        feed = Feed(url=url)
        session.add(feed)
    if given is not None:
        feed.topics = given
    report = IngestReport(not_modified=response.status == 304)
    if report.not_modified:
        # A 304 may carry fresher validators; without them the old ones still hold.
        feed.etag = response.etag or feed.etag
        feed.last_modified = response.last_modified or feed.last_modified
    else:
        match = _CategoryMatcher(session) if not feed.topics else None
        fixed = [topic.slug for topic in feed.topics]
        with session.begin_nested():
            for entry in entries:
                _ingest_entry(session, entry, report, topics=fixed, match=match)
        feed.etag, feed.last_modified = response.etag, response.last_modified
    feed.last_fetched_at = now or utcnow()
    feed.last_status = _status_line("ok: " + report.describe())
    session.flush()
    return report


def ingest_feed(
    session: Session,
    url: str,
    *,
    topic_slugs: Sequence[str] | None = None,
    fetch: FeedFetcher | None = None,
    now: datetime | None = None,
) -> IngestReport:
    """Fetch the feed at `url` (conditionally) and apply it, all in `session`."""
    if topic_slugs:
        resolve_topics(session, topic_slugs)  # refuse unknown topics before any request
    etag, modified = feed_validators(session, url)
    response = (fetch or fetch_feed)(url, etag=etag, modified=modified)
    return apply_feed(session, url, response, topic_slugs=topic_slugs, now=now)


UnitOfWork = Callable[[], AbstractContextManager[Session]]


def ingest_feed_in_steps(
    units: UnitOfWork,
    url: str,
    *,
    topic_slugs: Sequence[str] | None = None,
    fetch: FeedFetcher | None = None,
) -> IngestReport:
    """`ingest_feed` with the HTTP request outside any transaction.

    The CLI and the periodic task use this: on SQLite every transaction takes
    the write lock at BEGIN, and a slow feed server must not hold that lock
    (and so every signup and send) for the length of its response.
    """
    with units() as session:
        if topic_slugs:
            resolve_topics(session, topic_slugs)
        etag, modified = feed_validators(session, url)
    response = (fetch or fetch_feed)(url, etag=etag, modified=modified)
    with units() as session:
        return apply_feed(session, url, response, topic_slugs=topic_slugs)


def ingest_configured_feeds(
    units: UnitOfWork, *, fetch: FeedFetcher | None = None
) -> dict[str, IngestReport | str]:
    """Poll every stored feed; a failing feed gets its error in `last_status`, not a raise."""
    with units() as session:
        urls = list(session.scalars(select(Feed.url).order_by(Feed.id)))
    results: dict[str, IngestReport | str] = {}
    for url in urls:
        try:
            results[url] = ingest_feed_in_steps(units, url, fetch=fetch)
            continue
        except FeedError as e:
            results[url] = f"error: {e}"
        # One broken feed must not starve the others: its unit of work has rolled
        # back whatever it half-did, and the next feed gets a fresh one.
        except Exception as e:
            log.exception("ingesting feed %s failed", url)
            results[url] = f"error: unexpected {type(e).__name__}"
        with units() as session:
            feed = session.scalar(select(Feed).where(Feed.url == url))
            if feed is not None:
                feed.last_fetched_at = utcnow()
                feed.last_status = _status_line(str(results[url]))
    return results


def _status_line(text: str, limit: int = 300) -> str:
    # feeds.last_status is a String(300).
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_feed(url: str, response: FeedResponse) -> list[_Entry]:
    """The entries of an RSS or Atom document; FeedError when it is neither."""
    body, captions = _take_media_descriptions(response.body)
    # Content-Location makes relative links resolve against the feed's address;
    # a BytesIO keeps feedparser from ever treating the body as a path or URL.
    headers = {"content-location": url}
    if response.content_type:
        headers["content-type"] = response.content_type
    parsed = feedparser.parse(io.BytesIO(body), response_headers=headers)
    if not parsed.entries and (parsed.bozo or not parsed.version):
        problem = parsed.get("bozo_exception") or "no RSS or Atom root element"
        raise FeedError(f"{url} is not a valid RSS or Atom feed: {problem}")
    if captions is None or len(captions) != len(parsed.entries):
        captions = [""] * len(parsed.entries)
    return [_Entry(entry, caption) for entry, caption in zip(parsed.entries, captions, strict=True)]


@dataclass(frozen=True)
class _Entry:
    data: Mapping[str, Any]
    caption: str


_MEDIA_RSS = {"http://search.yahoo.com/mrss/", "http://search.yahoo.com/mrss"}


def _take_media_descriptions(body: bytes) -> tuple[bytes, list[str] | None]:
    """The document without its <media:description> elements, and each entry's first one.

    feedparser reads media:description as though it were the entry's own
    <description>: an image caption can replace the summary or even become the
    body. Cutting those elements out first, at the byte offsets expat reports,
    keeps the caption for the image's alt text and the article text intact.
    (None, unchanged) when the body does not parse as XML; feedparser then tries.
    """
    if b"search.yahoo.com/mrss" not in body or body.startswith((b"\xff\xfe", b"\xfe\xff")):
        return body, None
    parser = expat.ParserCreate(namespace_separator=" ")
    captions: list[str] = []
    cuts: list[tuple[int, int]] = []
    inside: list[int] = []  # start offset of the media:description being read
    text: list[str] = []

    def start(name: str, _attrs: dict[str, str]) -> None:
        uri, _, local = name.rpartition(" ")
        if local in {"item", "entry"} and uri not in _MEDIA_RSS:
            captions.append("")
        elif uri in _MEDIA_RSS and local == "description":
            inside.append(parser.CurrentByteIndex)
            text.clear()

    def end(name: str) -> None:
        uri, _, local = name.rpartition(" ")
        if not (uri in _MEDIA_RSS and local == "description") or not inside:
            return
        begin, at = inside.pop(), parser.CurrentByteIndex
        if body.startswith(b"</", at):
            stop = body.index(b">", at) + 1
        elif body[:at].endswith(b"/>"):  # an empty element: expat reports its end
            stop = at
        else:
            raise ValueError("unexpected offsets")
        cuts.append((begin, stop))
        caption = " ".join(html_to_text(sanitise_html("".join(text))).split())
        if captions and not captions[-1]:
            captions[-1] = caption

    def chars(data: str) -> None:
        if inside:
            text.append(data)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        parser.Parse(body, True)
    except (expat.ExpatError, ValueError):
        return body, None
    kept, position = [], 0
    for begin, stop in sorted(cuts):
        kept.append(body[position:begin])
        position = stop
    kept.append(body[position:])
    return b"".join(kept), captions


class _CategoryMatcher:
    """Topics named by an entry's categories: by slug, or by name ignoring case."""

    def __init__(self, session: Session) -> None:
        self._by_key: dict[str, Topic] = {}
        for topic in session.scalars(select(Topic)):
            self._by_key[topic.slug.casefold()] = topic
            self._by_key.setdefault(topic.name.casefold(), topic)

    def __call__(self, entry: Mapping[str, Any]) -> list[str]:
        found: dict[str, None] = {}
        for tag in entry.get("tags") or []:
            for key in (tag.get("term"), tag.get("label")):
                topic = self._by_key.get(" ".join(str(key or "").split()).casefold())
                if topic is not None:
                    found[topic.slug] = None
        return list(found)


def _ingest_entry(
    session: Session,
    entry: _Entry,
    report: IngestReport,
    *,
    topics: list[str],
    match: Callable[[Mapping[str, Any]], list[str]] | None,
) -> None:
    data = entry.data
    link = str(data.get("link") or "").strip()
    if not link:
        report.skip("no link", f"entry {data.get('title', '')!r}: it has no link")
        return
    try:
        https_url(link)
    except ValueError:
        report.skip("link not https", f"{link}: only https:// links are published")
        return
    if match is not None:
        topics = match(data)
    if not topics:
        report.skip("no matching topic", f"{link}: no category names a topic")
        return
    image_url, image_alt = _image(data, caption=entry.caption)
    try:
        article = ArticleIn(
            title=_title(data),
            canonical_url=link,
            summary=_summary(data),
            body_html=_body(data),
            author=str(data.get("author") or "")[:200],
            published_at=_published(data),
            topics=topics,
            image_url=image_url,
            image_alt=image_alt,
        )
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "entry"
        report.skip(f"invalid {where}", f"{link}: {where}: {first['msg']}")
        return
    _, created = upsert_article(session, article, source="feed")
    if created:
        report.created += 1
    else:
        report.updated += 1


def _title(data: Mapping[str, Any]) -> str:
    title = str(data.get("title") or "")
    if "html" in str((data.get("title_detail") or {}).get("type", "")):
        title = html_to_text(sanitise_html(title))
    return " ".join(title.split())


def _summary(data: Mapping[str, Any]) -> str:
    text = " ".join(html_to_text(sanitise_html(str(data.get("summary") or ""))).split())
    return first_sentences(text, limit=SUMMARY_LIMIT)


def _body(data: Mapping[str, Any]) -> str:
    content = data.get("content") or []
    if content and content[0].get("value"):
        return str(content[0]["value"])
    return str((data.get("summary_detail") or {}).get("value") or data.get("summary") or "")


def _published(data: Mapping[str, Any]) -> datetime | None:
    # feedparser normalises every date format it knows to a UTC struct_time.
    parsed = data.get("published_parsed") or data.get("updated_parsed")
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC) if parsed else None


def _image(data: Mapping[str, Any], *, caption: str) -> tuple[str | None, str]:
    """The first https image among media:content, media:thumbnail and enclosures."""
    candidates: list[str] = []
    for media in data.get("media_content") or []:
        kind = str(media.get("type") or "")
        if media.get("medium") == "image" or kind.startswith("image/"):
            candidates.append(str(media.get("url") or ""))
    candidates += [str(thumb.get("url") or "") for thumb in data.get("media_thumbnail") or []]
    candidates += [
        str(link.get("href") or "")
        for link in data.get("links") or []
        if link.get("rel") == "enclosure" and str(link.get("type") or "").startswith("image/")
    ]
    for url in candidates:
        try:
            image_url = https_url(url)
        except ValueError:
            continue  # an http:// image would be blocked as mixed content in mail clients
        return image_url, (caption or _title(data))[:300]
    return None, ""


# -- Markdown ------------------------------------------------------------------


class MarkdownArticle(ArticleIn):
    """The front matter of a Markdown article, with its body; the date is required."""

    published_at: AwareDatetime


def markdown_files(folder: Path) -> list[Path]:
    """The `*.md` files directly in `folder`, by name; ContentError if it is no folder."""
    if not folder.is_dir():
        raise ContentError(f"{folder} is not a folder")
    return sorted(path for path in folder.glob("*.md") if path.is_file())


def import_markdown_folder(
    session: Session, folder: Path, *, on_file: Callable[[Path], None] | None = None
) -> IngestReport:
    """Import every `*.md` file of `folder`; a bad file is reported and skipped.

    Each file goes in under its own savepoint, so a bad one never half-writes,
    and a file imported again updates its article (keyed by canonical_url).
    """
    return _import_markdown(session, markdown_files(folder), shift=None, on_file=on_file)


def import_sample_content(session: Session, folder: Path, *, now: datetime) -> IngestReport | None:
    """Import the sample articles into an empty archive, moved so the newest is a day old.

    The files carry fixed dates; shifting them all by one amount keeps their
    spacing while making sure this week's digest has articles on first start.
    None when the archive already has articles.
    """
    if session.scalar(select(Article.id).limit(1)) is not None:
        return None
    paths = markdown_files(folder)
    dates = [article.published_at for _, article in map(_read_markdown, paths) if article]
    shift = now - timedelta(days=1) - max(dates) if dates else timedelta(0)
    return _import_markdown(session, paths, shift=shift, on_file=None)


def _import_markdown(
    session: Session,
    paths: Sequence[Path],
    *,
    shift: timedelta | None,
    on_file: Callable[[Path], None] | None,
) -> IngestReport:
    report = IngestReport()
    for path in paths:
        problem, article = _read_markdown(path)
        if article is None:
            report.skip("invalid front matter", f"{path.name}: {problem}")
        else:
            if shift:
                article = article.model_copy(update={"published_at": article.published_at + shift})
            try:
                with session.begin_nested():
                    _, created = upsert_article(session, article, source="markdown")
            except ContentError as e:
                report.skip("refused", f"{path.name}: {e}")
            else:
                if created:
                    report.created += 1
                else:
                    report.updated += 1
        if on_file is not None:
            on_file(path)
    return report


def _read_markdown(path: Path) -> tuple[str, MarkdownArticle | None]:
    """(why not, None) for a bad file, else ("", the article)."""
    try:
        post = frontmatter.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        return "cannot read front matter: " + " ".join(str(e).split()), None
    metadata = dict(post.metadata)
    if {"body_markdown", "body_html"} & metadata.keys():
        return "the body goes below the front matter, not in it", None
    try:
        return "", MarkdownArticle.model_validate({**metadata, "body_markdown": post.content})
    except ValidationError as e:
        return "; ".join(_messages(e)), None


def _messages(error: ValidationError) -> list[str]:
    messages = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "front matter"
        messages.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return messages
