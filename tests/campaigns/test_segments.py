"""Segments: each filter alone and combined, compiled to SQL, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from newsletter.campaigns.segments import (
    SegmentIn,
    SegmentPreview,
    preview_segment,
    segment_filter,
)
from newsletter.content.service import UnknownTopicsError
from newsletter.subscribers.models import Subscriber, SubscriberStatus, SuppressionReason
from newsletter.subscribers.service import suppress
from tests.factories import make_subscriber, unique_email

ACTIVE = SubscriberStatus.ACTIVE
PENDING = SubscriberStatus.PENDING
UNSUBSCRIBED = SubscriberStatus.UNSUBSCRIBED


def selected(session: Session, among: Iterable[Subscriber], **segment: Any) -> set[str]:
    """The names of the subscribers in `among` that the segment selects."""
    ids = {subscriber.id: subscriber.name for subscriber in among}
    where = segment_filter(session, SegmentIn(**segment))
    found = session.scalars(select(Subscriber.id).where(where, Subscriber.id.in_(ids))).all()
    return {ids[subscriber_id] for subscriber_id in found}


def signed_up(session: Session, subscriber: Subscriber, at: datetime) -> Subscriber:
    subscriber.created_at = at
    session.flush()
    return subscriber


def test_default_segment_is_every_mailable_subscriber(session: Session) -> None:
    people = [
        make_subscriber(session, name="active"),
        make_subscriber(session, name="pending", status=PENDING),
        make_subscriber(session, name="gone", status=UNSUBSCRIBED),
    ]
    assert selected(session, people) == {"active"}


def test_statuses(session: Session) -> None:
    people = [
        make_subscriber(session, name="active"),
        make_subscriber(session, name="pending", status=PENDING),
        make_subscriber(session, name="gone", status=UNSUBSCRIBED),
    ]
    assert selected(session, people, statuses=["pending"]) == {"pending"}
    assert selected(session, people, statuses=["pending", "unsubscribed"]) == {"pending", "gone"}
    assert selected(session, people, statuses=["active", "pending", "unsubscribed"]) == {
        "active",
        "pending",
        "gone",
    }


def test_a_suppressed_active_subscriber_is_excluded(session: Session) -> None:
    kept = make_subscriber(session, name="kept")
    bounced = make_subscriber(session, name="bounced")
    suppress(session, bounced.email_hash, SuppressionReason.BOUNCED)
    session.flush()

    assert selected(session, [kept, bounced]) == {"kept"}
    assert selected(session, [kept, bounced], statuses=["active", "active"]) == {"kept"}
    # Not a sending segment: it matches on status alone, so staff can see them.
    assert selected(session, [kept, bounced], statuses=["active", "pending"]) == {
        "kept",
        "bounced",
    }


def test_topics_any_versus_topics_all(session: Session) -> None:
    people = [
        make_subscriber(session, name="spine", topics=("spine-mri",)),
        make_subscriber(session, name="both", topics=("spine-mri", "headaches")),
        make_subscriber(session, name="three", topics=("spine-mri", "headaches", "neck-pain")),
        make_subscriber(session, name="neck", topics=("neck-pain",)),
        make_subscriber(session, name="none", topics=()),
    ]
    assert selected(session, people, topics_any=["spine-mri", "headaches"]) == {
        "spine",
        "both",
        "three",
    }
    assert selected(session, people, topics_all=["spine-mri", "headaches"]) == {"both", "three"}
    assert selected(session, people, topics_all=["headaches"]) == {"both", "three"}
    assert selected(
        session, people, topics_any=["neck-pain"], topics_all=["spine-mri", "headaches"]
    ) == {"three"}
    assert selected(session, people) == {"spine", "both", "three", "neck", "none"}


def test_signed_up_range_is_half_open(session: Session) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2026, 2, 1, tzinfo=UTC)
    people = [
        signed_up(session, make_subscriber(session, name="before"), start - timedelta(seconds=1)),
        signed_up(session, make_subscriber(session, name="at-start"), start),
        signed_up(session, make_subscriber(session, name="inside"), start + timedelta(days=9)),
        signed_up(session, make_subscriber(session, name="at-end"), end),
    ]
    assert selected(session, people, signed_up_after=start) == {"at-start", "inside", "at-end"}
    assert selected(session, people, signed_up_before=end) == {"before", "at-start", "inside"}
    assert selected(session, people, signed_up_after=start, signed_up_before=end) == {
        "at-start",
        "inside",
    }


def test_signed_up_compares_instants_not_wall_clocks(session: Session) -> None:
    person = signed_up(
        session, make_subscriber(session, name="noon-utc"), datetime(2026, 3, 1, 12, tzinfo=UTC)
    )
    paris = datetime.fromisoformat("2026-03-01T12:30:00+01:00")  # 11:30 UTC
    assert selected(session, [person], signed_up_after=paris) == {"noon-utc"}
    assert selected(session, [person], signed_up_before=paris) == set()


def test_timezones(session: Session) -> None:
    people = [
        make_subscriber(session, name="paris", timezone="Europe/Paris"),
        make_subscriber(session, name="tokyo", timezone="Asia/Tokyo"),
        make_subscriber(session, name="utc", timezone="UTC"),
    ]
    assert selected(session, people, timezones=["Asia/Tokyo", "UTC"]) == {"tokyo", "utc"}
    assert selected(session, people, timezones=["America/New_York"]) == set()


def test_digest_paused(session: Session) -> None:
    reading = make_subscriber(session, name="reading")
    paused = make_subscriber(session, name="paused")
    paused.digest_paused = True
    session.flush()
    people = [reading, paused]

    assert selected(session, people, digest_paused=True) == {"paused"}
    assert selected(session, people, digest_paused=False) == {"reading"}
    assert selected(session, people, digest_paused=None) == {"reading", "paused"}


def test_name_contains_is_case_insensitive(session: Session) -> None:
    people = [
        make_subscriber(session, name="Ada Lovelace"),
        make_subscriber(session, name="Grace Hopper"),
        make_subscriber(session, name="ADAM"),
    ]
    assert selected(session, people, name_contains="ada") == {"Ada Lovelace", "ADAM"}
    assert selected(session, people, name_contains="LOVE") == {"Ada Lovelace"}
    assert selected(session, people, name_contains="hopper") == {"Grace Hopper"}


def test_name_contains_treats_like_wildcards_literally(session: Session) -> None:
    people = [
        make_subscriber(session, name="100% Ada"),
        make_subscriber(session, name="1000 Ada"),
        make_subscriber(session, name="ada_l"),
        make_subscriber(session, name="adaXl"),
        make_subscriber(session, name="a/b"),
        make_subscriber(session, name="ab"),
    ]
    assert selected(session, people, name_contains="0%") == {"100% Ada"}
    assert selected(session, people, name_contains="%") == {"100% Ada"}
    assert selected(session, people, name_contains="a_l") == {"ada_l"}
    assert selected(session, people, name_contains="_") == {"ada_l"}
    assert selected(session, people, name_contains="a/b") == {"a/b"}


def test_name_contains_matches_non_ascii_as_typed(session: Session) -> None:
    people = [make_subscriber(session, name="Émile Zola"), make_subscriber(session, name="Emil")]
    assert selected(session, people, name_contains="Émile") == {"Émile Zola"}
    assert selected(session, people, name_contains="zola") == {"Émile Zola"}


def test_email_domain_is_case_insensitive_and_exact(session: Session) -> None:
    people = [
        make_subscriber(session, name="lower", email=unique_email("a").replace("@", "@x.")),
        make_subscriber(session, name="upper", email="Reader@Clinic.EXAMPLE"),
        make_subscriber(session, name="other", email="reader@clinic.example.org"),
        make_subscriber(session, name="lookalike", email="reader@notclinic.example"),
    ]
    assert selected(session, people, email_domain="clinic.example") == {"upper"}
    assert selected(session, people, email_domain="CLINIC.Example") == {"upper"}
    assert selected(session, people, email_domain="@clinic.example") == {"upper"}
    assert selected(session, people, email_domain="x.example.org") == {"lower"}


def test_filters_combine_with_and(session: Session) -> None:
    start = datetime(2026, 5, 1, tzinfo=UTC)

    def person(
        name: str,
        *,
        email: str,
        topics: tuple[str, ...] = ("spine-mri", "headaches"),
        timezone: str = "Asia/Tokyo",
        at: datetime = start,
    ) -> Subscriber:
        subscriber = make_subscriber(
            session, name=name, email=email, topics=topics, timezone=timezone
        )
        return signed_up(session, subscriber, at)

    people = [
        person("Ada match", email="a1@clinic.example"),
        person("Ada wrong zone", email="a2@clinic.example", timezone="UTC"),
        person("Bob", email="b1@clinic.example"),
        person("Ada early", email="a3@clinic.example", at=start - timedelta(days=1)),
        person("Ada one topic", email="a4@clinic.example", topics=("spine-mri",)),
        person("Ada elsewhere", email="a5@elsewhere.example"),
    ]
    assert selected(
        session,
        people,
        topics_all=["spine-mri", "headaches"],
        timezones=["Asia/Tokyo"],
        signed_up_after=start,
        name_contains="ada",
        email_domain="clinic.example",
        digest_paused=False,
    ) == {"Ada match"}


def test_bad_input_gives_clear_errors() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"timezones": ["Mars/Olympus"]}, "unknown time zone 'Mars/Olympus'"),
        (
            {
                "signed_up_after": "2026-02-01T00:00:00Z",
                "signed_up_before": "2026-01-01T00:00:00Z",
            },
            "signed_up_after must be before signed_up_before",
        ),
        ({"signed_up_after": "2026-02-01T00:00:00"}, "timezone"),
        ({"topics": ["spine-mri"]}, "Extra inputs are not permitted"),
        ({"statuses": ["bounced"]}, "'active', 'pending' or 'unsubscribed'"),
        ({"statuses": []}, "at least 1 item"),
        ({"topics_any": [f"t{i}" for i in range(51)]}, "at most 50 items"),
        ({"name_contains": "x" * 101}, "at most 100 characters"),
        ({"name_contains": "a\nb"}, "line breaks"),
        ({"email_domain": "a@b.example"}, "not a domain name"),
        ({"email_domain": "münchen.de"}, "punycode"),
    ]
    for data, message in cases:
        with pytest.raises(ValidationError) as caught:
            SegmentIn.model_validate(data)
        assert message in str(caught.value), (data, str(caught.value))


def test_unknown_topics_are_named(session: Session) -> None:
    segment = SegmentIn(topics_any=["spine-mri", "astrology"], topics_all=["tarot"])
    with pytest.raises(UnknownTopicsError) as caught:
        segment_filter(session, segment)
    assert caught.value.slugs == ["astrology", "tarot"]
    assert str(caught.value) == "unknown topic(s): astrology, tarot"


def test_segment_round_trips_through_json() -> None:
    segment = SegmentIn(
        topics_any=["spine-mri", "spine-mri"],
        topics_all=["headaches"],
        statuses=["active", "pending"],
        signed_up_after=datetime(2026, 1, 1, tzinfo=UTC),
        timezones=["UTC"],
        digest_paused=False,
        name_contains="ada",
        email_domain="Example.ORG",
    )
    stored = segment.model_dump(mode="json")
    assert stored["topics_any"] == ["spine-mri"]
    assert stored["email_domain"] == "example.org"
    assert stored["signed_up_after"] == "2026-01-01T00:00:00Z"
    assert SegmentIn.model_validate(stored) == segment


def test_compiling_does_not_load_subscribers(session: Session) -> None:
    make_subscriber(session, topics=("spine-mri", "headaches"))
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    connection = session.connection()
    event.listen(connection, "before_cursor_execute", record)
    try:
        where = segment_filter(
            session, SegmentIn(topics_any=["spine-mri"], topics_all=["headaches", "neck-pain"])
        )
    finally:
        event.remove(connection, "before_cursor_execute", record)

    assert statements, "the topic slugs are checked against the database"
    assert not any("subscribers" in statement for statement in statements)
    sql = str(select(Subscriber.id).where(where).compile())
    # One EXISTS for topics_any, one per topics_all slug, one for the suppression list.
    assert sql.count("EXISTS") == 4


def test_preview_counts_and_samples(session: Session) -> None:
    for i in range(7):
        make_subscriber(session, name=f"Preview {i}", topics=("spine-mri", "headaches"))
    make_subscriber(session, name="Preview other", topics=("neck-pain",))
    segment = SegmentIn(topics_any=["headaches"], name_contains="preview")

    preview = preview_segment(session, segment, sample_size=5)

    ids = session.scalars(
        select(Subscriber.id).where(segment_filter(session, segment)).order_by(Subscriber.id)
    ).all()
    assert isinstance(preview, SegmentPreview)
    assert preview.count == len(ids) == 7
    assert len(preview.sample) == 5
    first = session.get(Subscriber, ids[0])
    assert first is not None
    assert preview.sample[0] == {
        "email": first.email,
        "name": "Preview 0",
        "status": "active",
        "timezone": "Europe/Paris",
        "topics": "spine-mri,headaches",
    }
    assert [row["name"] for row in preview.sample] == [f"Preview {i}" for i in range(5)]


def test_preview_sample_is_at_most_sample_size(session: Session) -> None:
    make_subscriber(session, name="Only one", email="only@preview.example")
    segment = SegmentIn(email_domain="preview.example")

    assert preview_segment(session, segment, sample_size=10) == SegmentPreview(
        count=1,
        sample=[
            {
                "email": "only@preview.example",
                "name": "Only one",
                "status": "active",
                "timezone": "Europe/Paris",
                "topics": "spine-mri",
            }
        ],
    )
    assert preview_segment(session, segment, sample_size=0) == SegmentPreview(count=1, sample=[])
    empty = preview_segment(session, SegmentIn(email_domain="nobody.example"))
    assert empty == SegmentPreview(count=0, sample=[])
    with pytest.raises(ValueError, match="sample_size"):
        preview_segment(session, segment, sample_size=-1)
