"""Importing folders of Markdown articles, the shipped samples among them."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import frontmatter
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.content.ingest import (
    import_markdown_folder,
    import_sample_content,
    markdown_files,
)
from newsletter.content.models import Article
from newsletter.content.service import ContentError
from newsletter.embedded import PROJECT_ROOT
from tests.conftest import Cli, create_database, drop_database

SAMPLE = PROJECT_ROOT / "content" / "sample"
SEEDED_TOPICS = {"spine-mri", "sciatica-back-pain", "headaches", "neck-pain", "pain-treatments"}


def _articles(session: Session) -> list[Article]:
    return list(session.scalars(select(Article).order_by(Article.canonical_url)))


def _count(session: Session) -> int:
    return session.scalar(select(func.count(Article.id))) or 0


def _front_matter_dates() -> dict[str, datetime]:
    dates = {}
    for path in markdown_files(SAMPLE):
        meta = frontmatter.load(path).metadata
        dates[str(meta["canonical_url"])] = meta["published_at"]
    return dates


def test_the_sample_folder_is_what_the_brief_promises() -> None:
    files = markdown_files(SAMPLE)
    assert 8 <= len(files) <= 10
    for path in files:
        post = frontmatter.load(path)
        words = len(post.content.split())
        assert 250 <= words <= 500, f"{path.name} has {words} words"
        assert "not medical advice" in post.content, path.name
        slug = path.stem
        assert post["canonical_url"] == f"https://www.example-painclinic.org/articles/{slug}"
        assert post["image_url"] == f"https://www.example-painclinic.org/images/{slug}.jpg"
    newest, oldest = max(_front_matter_dates().values()), min(_front_matter_dates().values())
    assert newest < datetime(2026, 11, 25, tzinfo=UTC) <= oldest + timedelta(weeks=3)


def test_the_sample_folder_imports_completely(session: Session) -> None:
    report = import_markdown_folder(session, SAMPLE)

    files = markdown_files(SAMPLE)
    assert (report.created, report.updated, report.skipped) == (len(files), 0, {})
    articles = _articles(session)
    assert len(articles) == len(files)
    for article in articles:
        assert article.topics and {t.slug for t in article.topics} <= SEEDED_TOPICS
        assert article.canonical_url.startswith("https://www.example-painclinic.org/articles/")
        assert article.image_url and article.image_url.startswith("https://")
        assert len(article.image_alt) > 20
        assert article.summary and article.author
        assert article.source == "markdown"
        assert "<h2>" in article.body_html and "<script" not in article.body_html
    assert {t.slug for a in articles for t in a.topics} == SEEDED_TOPICS
    published = {a.canonical_url: a.published_at for a in articles}
    assert published == _front_matter_dates()


GOOD = """---
title: "Neck stiffness after a long drive"
canonical_url: https://www.example-painclinic.org/articles/{slug}
topics: [neck-pain]
published_at: 2026-11-20T09:00:00Z
image_url: https://www.example-painclinic.org/images/{slug}.jpg
image_alt: A driver rolling their shoulders at a rest stop
---
Take a break every **two hours**.
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_bad_file_is_reported_by_name_and_the_others_import(
    session: Session, tmp_path: Path
) -> None:
    folder = tmp_path / "articles"
    _write(folder, "a-good.md", GOOD.format(slug="a-good"))
    _write(folder, "b-no-title.md", GOOD.format(slug="b").replace('title: "Neck', 'titel: "Neck'))
    _write(folder, "c-naive-date.md", GOOD.format(slug="c").replace("09:00:00Z", "09:00:00"))
    _write(folder, "d-bad-yaml.md", "---\ntitle: [unclosed\n---\nBody\n")
    _write(folder, "e-astrology.md", GOOD.format(slug="e").replace("neck-pain", "astrology"))
    _write(folder, "f-http.md", GOOD.format(slug="f").replace("https://www", "http://www", 1))
    _write(folder, "g-good.md", GOOD.format(slug="g-good"))
    _write(folder, "notes.txt", "not an article")

    report = import_markdown_folder(session, folder)

    assert (report.created, report.updated) == (2, 0)
    assert report.skipped == {"invalid front matter": 4, "refused": 1}
    problems = "\n".join(report.problems)
    assert "b-no-title.md: title: Field required" in problems
    assert "titel: Extra inputs are not permitted" in problems
    assert "c-naive-date.md: published_at: must include a time zone" in problems
    assert "d-bad-yaml.md: cannot read front matter" in problems
    assert "e-astrology.md: unknown topic(s): astrology" in problems
    assert "f-http.md: canonical_url: must be an absolute https:// URL" in problems
    urls = [a.canonical_url for a in _articles(session)]
    assert urls == [
        "https://www.example-painclinic.org/articles/a-good",
        "https://www.example-painclinic.org/articles/g-good",
    ]
    assert "<strong>two hours</strong>" in _articles(session)[0].body_html


def test_published_at_is_required_in_a_file(session: Session, tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    _write(folder, "undated.md", GOOD.format(slug="u").replace("published_at:", "# published:"))

    report = import_markdown_folder(session, folder)

    assert report.problems == ["undated.md: published_at: Field required"]
    assert _count(session) == 0


def test_reimport_updates_and_never_duplicates(session: Session, tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    shutil.copytree(SAMPLE, folder)
    import_markdown_folder(session, folder)
    edited = folder / "ice-pick-headaches.md"
    edited.write_text(
        edited.read_text(encoding="utf-8").replace(
            'title: "Ice-Pick Headaches: Sudden Stabs of Head Pain Explained"',
            'title: "Ice-Pick Headaches, Explained"',
        ),
        encoding="utf-8",
    )

    report = import_markdown_folder(session, folder)

    files = len(markdown_files(folder))
    assert (report.created, report.updated, report.skipped) == (0, files, {})
    assert _count(session) == files
    titles = set(session.scalars(select(Article.title)))
    assert "Ice-Pick Headaches, Explained" in titles
    assert "Ice-Pick Headaches: Sudden Stabs of Head Pain Explained" not in titles


def test_a_missing_folder_is_a_content_error(session: Session, tmp_path: Path) -> None:
    with pytest.raises(ContentError, match="is not a folder"):
        import_markdown_folder(session, tmp_path / "nowhere")


def test_sample_content_is_moved_so_the_newest_is_a_day_old(session: Session) -> None:
    now = datetime(2027, 3, 10, 18, 45, 12, 345000, tzinfo=UTC)

    report = import_sample_content(session, SAMPLE, now=now)

    original = _front_matter_dates()
    assert report is not None and report.created == len(original)
    published = {a.canonical_url: a.published_at for a in _articles(session)}
    assert max(published.values()) == now - timedelta(days=1)
    shift = now - timedelta(days=1) - max(original.values())
    assert published == {url: date + shift for url, date in original.items()}
    # "This week" has articles whatever day it is.
    assert sum(1 for date in published.values() if date > now - timedelta(days=7)) >= 2


def test_sample_content_only_goes_into_an_empty_archive(session: Session, tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    _write(folder, "one.md", GOOD.format(slug="one"))
    import_markdown_folder(session, folder)

    assert import_sample_content(session, SAMPLE, now=datetime.now(UTC)) is None
    assert _count(session) == 1


@pytest.fixture
def cli(backend: str, tmp_path: Path) -> Iterator[tuple[Cli, str]]:
    name = f"newsletter_cli_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if k != "NEWSLETTER_DATA_DIR"}
    if backend == "postgresql":
        env["DATABASE_URL"] = create_database(backend, name)
    data_dir = str(tmp_path / "data")
    run = Cli(env)
    run("db", "upgrade", "--data-dir", data_dir)
    yield run, data_dir
    drop_database(backend, name)


def test_cli_imports_a_markdown_folder(cli: tuple[Cli, str], tmp_path: Path) -> None:
    run, data_dir = cli
    files = len(markdown_files(SAMPLE))

    first = run("content", "import-markdown", "content/sample", "--data-dir", data_dir)
    assert f"content/sample: {files} created, 0 updated" in first.stdout
    assert "Importing" in first.stderr  # the progress bar

    listed = run("content", "list", "--data-dir", data_dir).stdout.splitlines()
    assert len(listed) == files
    assert listed[0].startswith("2026-11-24  What a Spine MRI Shows Your Doctor")
    assert "spine-mri" in listed[0]

    again = run("content", "import-markdown", "content/sample", "--data-dir", data_dir)
    assert f"0 created, {files} updated" in again.stdout

    folder = tmp_path / "bad"
    _write(folder, "ok.md", GOOD.format(slug="ok"))
    _write(folder, "broken.md", "---\ntitle: Only a title\n---\nBody\n")
    mixed = run("content", "import-markdown", str(folder), "--data-dir", data_dir)
    assert "1 created, 0 updated, 1 skipped (1 invalid front matter)" in mixed.stdout
    assert "broken.md: canonical_url: Field required" in mixed.stderr

    nowhere = str(tmp_path / "nowhere")
    missing = run("content", "import-markdown", nowhere, "--data-dir", data_dir, ok=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
