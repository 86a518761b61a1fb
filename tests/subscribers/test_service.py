"""The subscriber lifecycle, on each database backend."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.content.service import UnknownTopicsError
from newsletter.db import utcnow
from newsletter.subscribers import service
from newsletter.subscribers.models import (
    Consent,
    Subscriber,
    SubscriberStatus,
    Suppression,
    SuppressionReason,
)
from newsletter.subscribers.tokens import (
    ExpiredTokenError,
    InvalidTokenError,
    TokenSigner,
    signer_for,
)
from tests.conftest import QueuedTasks
from tests.factories import consent_info, make_subscriber, unique_email


@pytest.fixture
def signer(settings: Settings) -> TokenSigner:
    return signer_for(settings.effective_secret_key, settings.confirm_token_max_age_seconds)


def _signup(
    session: Session, email: str, *, topics: tuple[str, ...] = ("spine-mri",), **kw: object
):  # type: ignore[no-untyped-def]
    return service.signup(
        session,
        email=email,
        name=str(kw.get("name", "Ada")),
        topic_slugs=topics,
        timezone="Europe/Paris",
        consent=consent_info(),
        resend_after_seconds=int(kw.get("resend_after", 120)),  # type: ignore[call-overload]
        now=kw.get("now"),  # type: ignore[arg-type]
    )


def _commit(session: Session) -> None:
    session.commit()  # releases the test's savepoint and fires after-commit hooks


def test_signup_creates_a_pending_subscriber_with_consent_and_queues_confirmation(
    session: Session, queued: QueuedTasks
) -> None:
    email = unique_email()
    result = _signup(session, email, topics=("spine-mri", "headaches"))
    _commit(session)

    assert result.outcome is service.SignupOutcome.CREATED
    subscriber = result.subscriber
    assert subscriber.status == SubscriberStatus.PENDING
    assert subscriber.topic_slugs == ["spine-mri", "headaches"]
    [consent] = subscriber.consents
    assert (consent.ip_address, consent.user_agent, consent.text_version) == (
        "192.0.2.10",
        "pytest",
        "test-1",
    )
    assert consent.confirmed_at is None
    assert queued.names() == [(service.SEND_CONFIRMATION, [subscriber.id])]


def test_rolled_back_signup_queues_nothing(session: Session, queued: QueuedTasks) -> None:
    _signup(session, unique_email())
    session.rollback()
    assert queued.names() == []


def test_signing_up_again_while_pending_resends_but_is_rate_limited(
    session: Session, queued: QueuedTasks
) -> None:
    email = unique_email()
    first = _signup(session, email)
    soon = _signup(
        session, email.upper(), topics=("headaches",), now=utcnow() + timedelta(seconds=5)
    )
    later = _signup(session, email, now=utcnow() + timedelta(minutes=5))
    _commit(session)

    assert [first.outcome, soon.outcome, later.outcome] == [
        service.SignupOutcome.CREATED,
        service.SignupOutcome.RATE_LIMITED,
        service.SignupOutcome.RESENT,
    ]
    assert (
        session.scalar(
            select(func.count())
            .select_from(Subscriber)
            .where(Subscriber.email_hash == service.email_hash(email))
        )
        == 1
    )
    assert [name for name, _ in queued.names()] == [service.SEND_CONFIRMATION] * 2


def test_signup_of_an_active_address_changes_nothing_and_tells_its_owner(
    session: Session, queued: QueuedTasks
) -> None:
    subscriber = make_subscriber(session, topics=("headaches",))
    result = _signup(session, subscriber.email, topics=("spine-mri",), name="Mallory")
    _commit(session)

    assert result.outcome is service.SignupOutcome.ALREADY_ACTIVE
    session.refresh(subscriber)
    assert subscriber.topic_slugs == ["headaches"]
    assert subscriber.name == "Ada"
    assert queued.names() == [(service.SEND_ALREADY_SUBSCRIBED, [subscriber.id])]


def test_unknown_topics_are_refused_and_nothing_is_written(session: Session) -> None:
    email = unique_email()
    with pytest.raises(UnknownTopicsError, match="no-such-topic"):
        _signup(session, email, topics=("spine-mri", "no-such-topic"))
    assert service.get_subscriber_by_email(session, email) is None


def test_confirm_activates_and_queues_the_welcome(
    session: Session, signer: TokenSigner, queued: QueuedTasks
) -> None:
    subscriber = _signup(session, unique_email()).subscriber
    token = signer.confirm_token(subscriber.id, subscriber.confirmation_nonce)

    outcome, confirmed = service.confirm(session, token, signer)
    again, _ = service.confirm(session, token, signer)
    _commit(session)

    assert (outcome, again) == (
        service.ConfirmOutcome.CONFIRMED,
        service.ConfirmOutcome.ALREADY_CONFIRMED,
    )
    assert confirmed.status == SubscriberStatus.ACTIVE
    assert confirmed.consents[-1].confirmed_at is not None
    assert [name for name, _ in queued.names()] == [
        service.SEND_CONFIRMATION,
        service.SEND_WELCOME,
    ]


def test_an_expired_confirm_token_is_refused(session: Session, settings: Settings) -> None:
    subscriber = _signup(session, unique_email()).subscriber
    impatient = TokenSigner(settings.effective_secret_key, confirm_max_age=-1)
    token = impatient.confirm_token(subscriber.id, subscriber.confirmation_nonce)
    with pytest.raises(ExpiredTokenError):
        service.confirm(session, token, impatient)
    assert impatient.read_confirm_token_ignoring_age(token).subscriber_id == subscriber.id
    assert subscriber.status == SubscriberStatus.PENDING


def test_unsubscribe_suppresses_and_is_idempotent(session: Session) -> None:
    subscriber = make_subscriber(session)
    first = service.unsubscribe(session, subscriber.id)
    second = service.unsubscribe(session, subscriber.id)

    assert (first, second) == (
        service.UnsubscribeOutcome.UNSUBSCRIBED,
        service.UnsubscribeOutcome.ALREADY_UNSUBSCRIBED,
    )
    session.refresh(subscriber)
    assert subscriber.status == SubscriberStatus.UNSUBSCRIBED
    assert service.suppression_reason(session, subscriber.email) is SuppressionReason.UNSUBSCRIBED


def test_an_old_confirm_link_cannot_undo_an_unsubscribe(
    session: Session, signer: TokenSigner
) -> None:
    subscriber = _signup(session, unique_email()).subscriber
    token = signer.confirm_token(subscriber.id, subscriber.confirmation_nonce)
    service.confirm(session, token, signer)
    service.unsubscribe(session, subscriber.id)

    with pytest.raises(InvalidTokenError, match="unsubscribed"):
        service.confirm(session, token, signer)
    session.refresh(subscriber)
    assert subscriber.status == SubscriberStatus.UNSUBSCRIBED


def test_resubscribing_needs_a_fresh_opt_in(session: Session, signer: TokenSigner) -> None:
    email = unique_email()
    subscriber = _signup(session, email).subscriber
    old_token = signer.confirm_token(subscriber.id, subscriber.confirmation_nonce)
    service.confirm(session, old_token, signer)
    service.unsubscribe(session, subscriber.id)

    again = _signup(session, email, now=utcnow() + timedelta(hours=1))
    assert again.outcome is service.SignupOutcome.CREATED
    assert again.subscriber.status == SubscriberStatus.PENDING
    assert service.suppression_reason(session, email) is SuppressionReason.UNSUBSCRIBED
    with pytest.raises(InvalidTokenError):
        service.confirm(session, old_token, signer)

    new_token = signer.confirm_token(subscriber.id, again.subscriber.confirmation_nonce)
    outcome, _ = service.confirm(session, new_token, signer)
    assert outcome is service.ConfirmOutcome.CONFIRMED
    assert service.suppression_reason(session, email) is None


def test_bounced_addresses_cannot_sign_up_and_get_no_email(
    session: Session, queued: QueuedTasks
) -> None:
    email = unique_email()
    service.suppress(session, service.email_hash(email), SuppressionReason.BOUNCED)
    result = _signup(session, email)
    _commit(session)
    assert result.outcome is service.SignupOutcome.SUPPRESSED
    assert service.get_subscriber_by_email(session, email) is None
    assert queued.names() == []


def test_update_preferences(session: Session) -> None:
    subscriber = make_subscriber(session, topics=("spine-mri",))
    service.update_preferences(
        session,
        subscriber.id,
        name="Grace",
        topic_slugs=["headaches", "neck-pain"],
        timezone="Asia/Tokyo",
        digest_paused=True,
    )
    session.refresh(subscriber)
    assert (subscriber.name, subscriber.timezone, subscriber.digest_paused) == (
        "Grace",
        "Asia/Tokyo",
        True,
    )
    assert subscriber.topic_slugs == ["headaches", "neck-pain"]


def test_update_preferences_with_an_unknown_topic_changes_nothing(session: Session) -> None:
    subscriber = make_subscriber(session, topics=("spine-mri",))
    with pytest.raises(UnknownTopicsError):
        service.update_preferences(
            session,
            subscriber.id,
            name="Grace",
            topic_slugs=["bogus"],
            timezone="Asia/Tokyo",
            digest_paused=True,
        )
    session.refresh(subscriber)
    assert (subscriber.name, subscriber.topic_slugs) == ("Ada", ["spine-mri"])


def test_export_has_the_consent_history(session: Session) -> None:
    subscriber = make_subscriber(session, topics=("headaches",))
    data = service.export_subscriber(session, subscriber.email.upper())
    assert data["email"] == subscriber.email
    assert data["topics"] == ["headaches"]
    assert data["consents"][0]["consent_text_version"] == "test-1"


def test_erase_keeps_only_a_hash_and_the_address_is_never_mailed_again(session: Session) -> None:
    subscriber = make_subscriber(session)
    email, subscriber_id = subscriber.email, subscriber.id
    service.erase_subscriber(session, email)
    session.expunge_all()

    assert session.get(Subscriber, subscriber_id) is None
    assert session.scalar(select(Consent).where(Consent.subscriber_id == subscriber_id)) is None
    suppression = session.scalar(select(Suppression))
    assert suppression is not None
    assert suppression.email_hash == service.email_hash(email)
    assert email not in repr(suppression.__dict__)
    assert service.suppression_reason(session, email) is SuppressionReason.ERASED


def test_operator_import_never_overrides_an_unsubscribe(session: Session) -> None:
    subscriber = make_subscriber(session)
    service.unsubscribe(session, subscriber.id)
    service.erase_subscriber(session, subscriber.email)
    _, created = service.add_confirmed_subscriber(
        session,
        email=subscriber.email,
        name="",
        topic_slugs=["spine-mri"],
        timezone="UTC",
        consent=consent_info("import"),
    )
    assert created is False
    assert service.get_subscriber_by_email(session, subscriber.email) is None


def test_expire_pending_signups_removes_only_old_unconfirmed_ones(session: Session) -> None:
    old = make_subscriber(session, status=SubscriberStatus.PENDING)
    old.created_at = utcnow() - timedelta(days=40)
    fresh = make_subscriber(session, status=SubscriberStatus.PENDING)
    active = make_subscriber(session)
    active.created_at = utcnow() - timedelta(days=400)
    session.flush()

    assert service.expire_pending_signups(session, older_than=timedelta(days=30)) == 1
    remaining = set(session.scalars(select(Subscriber.id)).all())
    assert old.id not in remaining
    assert {fresh.id, active.id} <= remaining
