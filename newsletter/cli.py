"""The `newsletter` command: run the service and look after its subscribers.

Every command acts on the instance named by --data-dir (or NEWSLETTER_DATA_DIR),
or on a fleet's database when DATABASE_URL is set. Domain modules are imported
inside the commands, after the options have been turned into settings.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="A self-hosted newsletter for health publishers.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
topics_app = typer.Typer(help="The topics subscribers choose from.", no_args_is_help=True)
subscribers_app = typer.Typer(help="Add, list, import, export and erase.", no_args_is_help=True)
staff_app = typer.Typer(help="Staff access to the staff API.", no_args_is_help=True)
staff_token_app = typer.Typer(help="Bearer tokens for the staff API.", no_args_is_help=True)
content_app = typer.Typer(help="Articles: import, ingest and list.", no_args_is_help=True)
digest_app = typer.Typer(help="The weekly digest.", no_args_is_help=True)
campaigns_app = typer.Typer(help="Send campaigns and steer them.", no_args_is_help=True)
app.add_typer(campaigns_app, name="campaigns")
staff_app.add_typer(staff_token_app, name="token")
app.add_typer(digest_app, name="digest")
app.add_typer(db_app, name="db")
app.add_typer(staff_app, name="staff")
app.add_typer(content_app, name="content")
app.add_typer(topics_app, name="topics")
app.add_typer(subscribers_app, name="subscribers")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="NEWSLETTER_DATA_DIR",
        help="Folder of the embedded instance (SQLite file, Redis socket, dev inbox).",
        show_default=False,
    ),
]


def _use_settings(**overrides: Any) -> Any:
    """Export option values as NEWSLETTER_* variables and return fresh settings."""
    from newsletter.config import get_settings

    for name, value in overrides.items():
        if value is not None:
            os.environ[f"NEWSLETTER_{name.upper()}"] = str(value)
    get_settings.cache_clear()
    return get_settings()


@app.callback()
def select_instance(data_dir: DataDir = None) -> None:
    """A self-hosted newsletter for health publishers."""
    from newsletter.embedded import read_instance_file

    settings = _use_settings(data_dir=data_dir)
    # Ports that `newsletter up` used for this data folder, unless set explicitly.
    for key, value in read_instance_file(settings.resolved_data_dir).items():
        os.environ.setdefault(key, value)
    _use_settings()


@contextmanager
def _session() -> Iterator[Any]:
    from newsletter.db import unit_of_work

    with unit_of_work() as session:
        yield session


def _fail(message: str) -> typer.Exit:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def upgrade_database() -> None:
    """Bring the schema to the newest migration (seed topics come with it)."""
    from alembic import command
    from alembic.config import Config

    from newsletter.embedded import PROJECT_ROOT

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    upgrade_database()
    typer.echo("Database is up to date.")


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Address the web app listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the web app.")] = 8000,
    smtp_port: Annotated[int, typer.Option(help="Port of the dev inbox SMTP server.")] = 8025,
    data_dir: DataDir = None,
    with_sample_content: Annotated[
        bool,
        typer.Option(
            "--with-sample-content/--no-sample-content",
            help="Into an empty archive, import the sample articles (dated up to yesterday).",
        ),
    ] = True,
) -> None:
    """Start everything: Redis, worker, beat, web app and dev inbox. Ctrl-C stops it all."""
    from newsletter import embedded
    from newsletter.delivery.dev_inbox import start_dev_inbox

    settings = _use_settings(host=host, port=port, smtp_port=smtp_port, data_dir=data_dir)
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    supervisor = embedded.Supervisor()
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    inbox = None
    try:
        if settings.embedded:
            supervisor.adopt("redis", embedded.start_embedded_redis(settings))
        upgrade_database()
        embedded.write_instance_file(settings)
        if with_sample_content:
            _import_sample_content()
        if settings.dev_inbox_enabled and settings.smtp_url is None:
            inbox = start_dev_inbox(settings.inbox_dir, host="127.0.0.1", port=settings.smtp_port)
        env = embedded.child_environment(settings)
        for name, argv in embedded.child_commands(settings).items():
            supervisor.start(name, argv, env)
        base = settings.effective_base_url
        typer.echo(
            f"\nNewsletter is running (data in {settings.resolved_data_dir}).\n"
            f"  Signup page:  {base}/subscribe\n"
            f"  Dev inbox:    {base}/dev/inbox   (SMTP on 127.0.0.1:{settings.smtp_port})\n"
            f"  API docs:     {base}/api/docs\n"
            "Press Ctrl-C to stop.\n"
        )
        died = supervisor.wait()
        if died is not None:
            raise embedded.StartupError(f"the {died} process stopped unexpectedly")
    except (embedded.StartupError, OSError) as e:
        raise _fail(str(e)) from e
    finally:
        supervisor.stop_all()
        if inbox is not None:
            inbox.stop()
    typer.echo("Stopped.")


def _import_sample_content() -> None:
    """Fill an empty archive with content/sample/, so the first digest has articles."""
    from newsletter.content.ingest import import_sample_content
    from newsletter.db import utcnow
    from newsletter.embedded import PROJECT_ROOT
    from newsletter.errors import DomainError

    try:
        with _session() as session:
            report = import_sample_content(
                session, PROJECT_ROOT / "content" / "sample", now=utcnow()
            )
    except DomainError as e:
        # The samples are a convenience: without them the service still starts.
        typer.secho(f"Sample content not imported: {e}", fg=typer.colors.YELLOW, err=True)
        return
    if report is not None:
        typer.echo(f"Sample content: {report.describe()}.")


@app.command("dev-inbox")
def dev_inbox(
    port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1).")] = 8025,
) -> None:
    """Run only the dev inbox SMTP server (beside a fleet on a laptop)."""
    from newsletter.config import get_settings
    from newsletter.delivery.dev_inbox import start_dev_inbox

    folder = get_settings().inbox_dir
    controller = start_dev_inbox(folder, host="127.0.0.1", port=port)
    typer.echo(f"Dev inbox on 127.0.0.1:{port}, saving to {folder}. Ctrl-C stops.")
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        controller.stop()


@topics_app.command("list")
def topics_list() -> None:
    """Show every topic with its slug."""
    from newsletter.content.service import list_topics

    with _session() as session:
        for topic in list_topics(session):
            typer.echo(f"{topic.slug:<22} {topic.name:<24} {topic.description}")


def _consent(source: str) -> Any:
    from newsletter.config import get_settings
    from newsletter.subscribers.service import ConsentInfo

    return ConsentInfo(source=source, text_version=get_settings().consent_text_version)


def _add_one(
    session: Any, row: dict[str, Any], *, preconfirmed: bool, source: str
) -> tuple[str, str]:
    """Validate and add one subscriber; returns (email, what happened)."""
    from newsletter.config import get_settings
    from newsletter.subscribers import service
    from newsletter.subscribers.schemas import SubscriptionIn

    settings = get_settings()
    signup = SubscriptionIn(**row)
    timezone = signup.timezone or settings.default_timezone
    if preconfirmed:
        _, created = service.add_confirmed_subscriber(
            session,
            email=signup.email,
            name=signup.name,
            topic_slugs=signup.topics,
            timezone=timezone,
            consent=_consent(source),
        )
        return signup.email, "added" if created else "skipped (already known or suppressed)"
    result = service.signup(
        session,
        email=signup.email,
        name=signup.name,
        topic_slugs=signup.topics,
        timezone=timezone,
        consent=_consent(source),
        resend_after_seconds=settings.resend_confirmation_after_seconds,
    )
    return signup.email, f"signup {result.outcome}"


@subscribers_app.command("add")
def subscribers_add(
    email: str,
    topic: Annotated[list[str], typer.Option("--topic", "-t", help="Topic slug; repeat.")],
    name: Annotated[str, typer.Option(help="Name used in greetings.")] = "",
    timezone: Annotated[str | None, typer.Option(help="IANA time zone.")] = None,
    preconfirmed: Annotated[
        bool,
        typer.Option(help="Consent was collected elsewhere: add as active, send no confirmation."),
    ] = False,
) -> None:
    """Add one subscriber; by default they get a confirmation email (double opt-in)."""
    from pydantic import ValidationError

    from newsletter.errors import DomainError
    from newsletter.subscribers.schemas import first_error_messages

    row = {"email": email, "name": name, "topics": topic, "timezone": timezone}
    try:
        with _session() as session:
            address, outcome = _add_one(session, row, preconfirmed=preconfirmed, source="cli")
    except ValidationError as e:
        raise _fail("; ".join(first_error_messages(e))) from e
    except DomainError as e:
        raise _fail(str(e)) from e
    typer.echo(f"{address}: {outcome}")


@subscribers_app.command("list")
def subscribers_list(
    status: Annotated[str | None, typer.Option(help="pending, active or unsubscribed.")] = None,
    topic: Annotated[str | None, typer.Option(help="Only subscribers of this topic slug.")] = None,
) -> None:
    """List subscribers, oldest first."""
    from newsletter.subscribers.models import SubscriberStatus
    from newsletter.subscribers.service import list_subscribers

    try:
        wanted = SubscriberStatus(status) if status else None
    except ValueError as e:
        raise _fail(f"unknown status {status!r}") from e
    after_id, shown = 0, 0
    with _session() as session:
        while page := list_subscribers(session, status=wanted, topic_slug=topic, after_id=after_id):
            for subscriber in page:
                topics = ",".join(subscriber.topic_slugs)
                typer.echo(f"{subscriber.email:<40} {subscriber.status:<13} {topics}")
            after_id, shown = page[-1].id, shown + len(page)
    typer.echo(f"{shown} subscriber(s)", err=True)


@subscribers_app.command("import")
def subscribers_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV file.")],
    preconfirmed: Annotated[
        bool, typer.Option(help="Consent was collected elsewhere: add as active.")
    ] = False,
) -> None:
    """Import a CSV with columns email, name, topics (space-separated slugs), timezone.

    Each row is its own transaction: a bad row is reported and skipped, never
    half-written, and the rest go on.
    """
    from pydantic import ValidationError

    from newsletter.errors import DomainError
    from newsletter.subscribers.schemas import first_error_messages

    with file.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    counts: dict[str, int] = {}
    problems: list[str] = []
    with typer.progressbar(rows, label="Importing", file=sys.stderr) as progress:
        for line, row in enumerate(progress, start=2):
            values = {
                "email": (row.get("email") or "").strip(),
                "name": (row.get("name") or "").strip(),
                "topics": (row.get("topics") or "").split(),
                "timezone": (row.get("timezone") or "").strip() or None,
            }
            try:
                with _session() as session:
                    _, outcome = _add_one(
                        session, values, preconfirmed=preconfirmed, source="import"
                    )
            except ValidationError as e:
                problems.append(f"line {line}: " + "; ".join(first_error_messages(e)))
                outcome = "rejected"
            except DomainError as e:
                problems.append(f"line {line}: {e}")
                outcome = "rejected"
            counts[outcome] = counts.get(outcome, 0) + 1
    for problem in problems:
        typer.echo(problem, err=True)
    typer.echo(", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items())))


@subscribers_app.command("export")
def subscribers_export(
    email: Annotated[
        str | None, typer.Option(help="One subscriber's full record (a data-access request).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Export subscribers as JSON: everyone, or one address with its consent history."""
    from newsletter.subscribers.service import (
        SubscriberNotFoundError,
        export_subscriber,
        list_subscribers,
    )

    with _session() as session:
        if email:
            try:
                data: Any = export_subscriber(session, email)
            except SubscriberNotFoundError as e:
                raise _fail(str(e)) from e
        else:
            data, after_id = [], 0
            while page := list_subscribers(session, after_id=after_id):
                data.extend(
                    {
                        "email": s.email,
                        "name": s.name,
                        "status": str(s.status),
                        "topics": s.topic_slugs,
                        "timezone": s.timezone,
                        "created_at": s.created_at.isoformat(),
                    }
                    for s in page
                )
                after_id = page[-1].id
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if out:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"Wrote {out}", err=True)
    else:
        typer.echo(text, nl=False)


@subscribers_app.command("unsubscribe")
def subscribers_unsubscribe(email: str) -> None:
    """Unsubscribe an address (as if they had clicked the link)."""
    from newsletter.subscribers import service

    with _session() as session:
        subscriber = service.get_subscriber_by_email(session, email)
        if subscriber is None:
            raise _fail(f"no subscriber with address {email}")
        outcome = service.unsubscribe(session, subscriber.id)
    typer.echo(f"{email}: {outcome}")


@subscribers_app.command("erase")
def subscribers_erase(
    email: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete an address's personal data; a hash stays so it is never mailed again."""
    from newsletter.subscribers.service import SubscriberNotFoundError, erase_subscriber

    if not yes:
        typer.confirm(f"Erase every record of {email}?", abort=True)
    with _session() as session:
        try:
            erase_subscriber(session, email)
        except SubscriberNotFoundError as e:
            raise _fail(str(e)) from e
    typer.echo(f"{email}: erased")


@staff_token_app.command("create")
def staff_token_create(
    name: Annotated[str, typer.Option(help="Who or what uses the token, e.g. 'cms-sync'.")],
) -> None:
    """Create a staff API token; it is shown once and stored only as a hash."""
    from newsletter.staff.service import create_staff_token

    with _session() as session:
        token, plain = create_staff_token(session, name=name)
    typer.echo(f"Token {token.id} ({name}) created. Store it now; it will not be shown again:")
    typer.echo(plain)


@staff_token_app.command("list")
def staff_token_list() -> None:
    """List staff tokens (never their values)."""
    from newsletter.staff.service import list_staff_tokens

    with _session() as session:
        for token in list_staff_tokens(session):
            state = "revoked" if token.revoked_at else "active"
            used = (
                token.last_used_at.isoformat(timespec="seconds") if token.last_used_at else "never"
            )
            typer.echo(f"{token.id:>4}  {token.name:<30} {state:<8} last used {used}")


@staff_token_app.command("revoke")
def staff_token_revoke(token_id: int) -> None:
    """Revoke a token by id; requests with it get 401 from then on."""
    from newsletter.staff.service import revoke_staff_token

    with _session() as session:
        if not revoke_staff_token(session, token_id):
            raise _fail(f"no active token with id {token_id}")
    typer.echo(f"Token {token_id} revoked.")


@content_app.command("list")
def content_list(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
) -> None:
    """The newest articles with their topics."""
    from sqlalchemy import select

    from newsletter.content.models import Article

    with _session() as session:
        query = select(Article).order_by(Article.published_at.desc()).limit(limit)
        for article in session.scalars(query):
            topics = ",".join(topic.slug for topic in article.topics)
            typer.echo(f"{article.published_at:%Y-%m-%d}  {article.title[:60]:<60}  {topics}")


@content_app.command("ingest-feed")
def content_ingest_feed(
    url: str,
    topic: Annotated[
        list[str] | None,
        typer.Option(
            "--topic",
            "-t",
            help="Topic slug for every article; repeat. Remembered for the feed. "
            "Without it: the feed's remembered topics, else its categories.",
        ),
    ] = None,
) -> None:
    """Fetch an RSS or Atom feed now and add or update its articles."""
    from newsletter.content.ingest import ingest_feed_in_steps
    from newsletter.db import unit_of_work
    from newsletter.errors import DomainError

    try:
        report = ingest_feed_in_steps(unit_of_work, url, topic_slugs=topic)
    except DomainError as e:
        raise _fail(str(e)) from e
    for problem in report.problems:
        typer.echo(problem, err=True)
    typer.echo(f"{url}: {report.describe()}")


@content_app.command("import-markdown")
def content_import_markdown(
    folder: Annotated[
        Path,
        typer.Argument(
            exists=True, file_okay=False, help="Folder of *.md files with YAML front matter."
        ),
    ],
) -> None:
    """Import every Markdown article in a folder; bad files are reported and skipped.

    Importing the same files again updates their articles (one per canonical_url).
    """
    from newsletter.content.ingest import import_markdown_folder, markdown_files
    from newsletter.errors import DomainError

    try:
        files = markdown_files(folder)
        with (
            _session() as session,
            typer.progressbar(length=len(files), label="Importing", file=sys.stderr) as progress,
        ):
            report = import_markdown_folder(
                session, folder, on_file=lambda _path: progress.update(1)
            )
    except DomainError as e:
        raise _fail(str(e)) from e
    for problem in report.problems:
        typer.echo(problem, err=True)
    typer.echo(f"{folder}: {report.describe()}")


@digest_app.command("preview")
def digest_preview(
    email: Annotated[str, typer.Option(help="The subscriber whose digest to build.")],
    out: Annotated[Path | None, typer.Option(help="Write the message here (.eml).")] = None,
    send: Annotated[bool, typer.Option(help="Also send it through SMTP_URL.")] = False,
) -> None:
    """Build exactly what a subscriber would receive this week; save or send it."""
    from newsletter.campaigns.digest import preview_digest
    from newsletter.config import get_settings
    from newsletter.db import utcnow
    from newsletter.delivery.sender import DeliveryError, make_sender, send_all
    from newsletter.errors import DomainError
    from newsletter.subscribers.tokens import signer_for

    settings = get_settings()
    signer = signer_for(settings.effective_secret_key, settings.confirm_token_max_age_seconds)
    with _session() as session:
        try:
            message = preview_digest(session, email, now=utcnow(), settings=settings, signer=signer)
        except DomainError as e:
            raise _fail(str(e)) from e
    if out is not None:
        out.write_bytes(message.data)
        typer.echo(f"Wrote {out} ({len(message.data):,} bytes)")
    if send:
        try:
            send_all(make_sender(settings), [message])
        except DeliveryError as e:
            raise _fail(f"could not send: {e}") from e
        typer.echo(f"Sent to {message.rcpt_to} through {settings.effective_smtp_url}")
    if out is None and not send:
        typer.echo(message.data.decode("ascii"), nl=False)


def _progress_line(progress: Any, now: Any) -> str:
    counts = progress.counts
    line = (
        f"campaign {progress.campaign_id} {progress.status}: "
        f"{counts.get('sent', 0)} sent, {counts.get('queued', 0) + counts.get('sending', 0)} "
        f"waiting, {counts.get('bounced', 0)} bounced, {counts.get('failed', 0)} failed, "
        f"{counts.get('suppressed', 0)} suppressed"
    )
    waiting = counts.get("queued", 0) + counts.get("sending", 0)
    rate = progress.rate_per_second(now)
    eta = progress.eta_seconds(now)
    if rate and waiting:
        line += f" | {rate:,.0f} msg/s"
    if eta is not None and waiting and progress.status == "running":
        line += f", about {eta:,.0f} s left"
    return line


def _watch(campaign_id: int, *, interval: float = 0.5) -> str:
    """Show a campaign's progress until it stops running; returns its final status."""
    import time

    from newsletter.campaigns.runner import campaign_progress
    from newsletter.db import utcnow

    bar = None
    shown = 0
    try:
        while True:
            with _session() as session:
                progress = campaign_progress(session, campaign_id)
            if bar is None and progress.planned and progress.total:
                bar = typer.progressbar(length=progress.total, label="Sending", file=sys.stderr)
                bar.__enter__()
            if bar is not None:
                done = progress.handed_over
                bar.update(done - shown)
                shown = done
            if progress.status not in {"running", "scheduled"}:
                break
            time.sleep(interval)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    typer.echo(_progress_line(progress, utcnow()))
    return progress.status


def _steer(action: str, campaign_id: int) -> None:
    from newsletter.campaigns import runner
    from newsletter.errors import DomainError

    operation = {
        "pause": runner.pause_campaign,
        "resume": runner.resume_campaign,
        "cancel": runner.cancel_campaign,
    }[action]
    try:
        with _session() as session:
            operation(session, campaign_id)
    except DomainError as e:
        raise _fail(str(e)) from e
    typer.echo(f"Campaign {campaign_id}: {action} done.")


@campaigns_app.command("send-digest-now")
def campaigns_send_digest_now(
    days: Annotated[int, typer.Option(help="The digest covers this many days up to now.")] = 7,
    wait: Annotated[bool, typer.Option(help="Show progress until it is sent.")] = True,
) -> None:
    """Send the digest of the last DAYS days to every subscriber it concerns, now."""
    from datetime import timedelta

    from newsletter.campaigns import runner
    from newsletter.db import utcnow

    now = utcnow()
    with _session() as session:
        campaign = runner.create_digest_campaign(session, start=now - timedelta(days=days), end=now)
        runner.start_campaign(session, campaign.id)
        campaign_id = campaign.id
    typer.echo(f"Campaign {campaign_id} started: {campaign.name}.")
    if wait:
        _watch(campaign_id)


def _parse_when(value: str) -> Any:
    """An aware datetime from ISO 8601 text, or a clear CLI error."""
    from datetime import datetime

    try:
        when = datetime.fromisoformat(value)
    except ValueError as e:
        raise _fail(f"expected ISO 8601, like 2026-12-01T08:00:00+01:00: {e}") from e
    if when.tzinfo is None:
        raise _fail("the time needs a UTC offset, like 2026-12-01T08:00:00+01:00")
    return when


@campaigns_app.command("schedule")
def campaigns_schedule(
    campaign_id: int,
    at: Annotated[
        str | None, typer.Option(help="Send then (ISO 8601 with offset); now when omitted.")
    ] = None,
) -> None:
    """Schedule a draft campaign for later, or start it now."""
    from newsletter.campaigns.schedule import schedule_campaign
    from newsletter.db import utcnow
    from newsletter.errors import DomainError

    send_at = _parse_when(at) if at is not None else None
    try:
        with _session() as session:
            status = schedule_campaign(session, campaign_id, send_at=send_at, now=utcnow())
    except DomainError as e:
        raise _fail(str(e)) from e
    when = f" for {send_at.isoformat()}" if status == "scheduled" and send_at else ""
    typer.echo(f"Campaign {campaign_id} {status}{when}.")


@campaigns_app.command("plan-digest")
def campaigns_plan_digest(
    at: Annotated[
        str | None,
        typer.Option(
            help="Plan as if it were this time (ISO 8601 with offset), to try the schedule."
        ),
    ] = None,
) -> None:
    """Queue this week's digest for every subscriber whose local send time has come."""
    from newsletter.campaigns.weekly import plan_weekly_digest
    from newsletter.config import get_settings
    from newsletter.db import utcnow

    now = _parse_when(at) if at is not None else utcnow()
    settings = get_settings()
    with _session() as session:
        plans = plan_weekly_digest(session, now=now, settings=settings)
    if not plans:
        typer.echo("Nobody's send time has come yet this week.")
    for plan in plans:
        typer.echo(
            f"Campaign {plan.campaign_id}: {plan.queued} queued, {plan.skipped_late} skipped as "
            f"late; due now: {', '.join(plan.due_zones) or 'no zone'}"
        )


@campaigns_app.command("list")
def campaigns_list() -> None:
    """The latest campaigns with their status and counts."""
    from newsletter.campaigns.runner import campaigns_progress, iter_campaigns
    from newsletter.db import utcnow

    with _session() as session:
        campaigns = list(iter_campaigns(session))
        progress = campaigns_progress(session, campaigns)
        for campaign in campaigns:
            line = _progress_line(progress[campaign.id], utcnow()).split(": ", 1)[1]
            typer.echo(f"{campaign.id:>5}  {campaign.kind:<9}  {campaign.name[:48]:<48}  {line}")


@campaigns_app.command("show")
def campaigns_show(campaign_id: int) -> None:
    """One campaign's status and counts, read from the ledger."""
    from newsletter.campaigns.runner import campaign_progress
    from newsletter.db import utcnow
    from newsletter.errors import DomainError

    try:
        with _session() as session:
            typer.echo(_progress_line(campaign_progress(session, campaign_id), utcnow()))
    except DomainError as e:
        raise _fail(str(e)) from e


@campaigns_app.command("watch")
def campaigns_watch(campaign_id: int) -> None:
    """Follow a campaign with a progress bar until it stops running."""
    _watch(campaign_id)


@campaigns_app.command("pause")
def campaigns_pause(campaign_id: int) -> None:
    """Stop new sends within one batch; resume carries on from the ledger."""
    _steer("pause", campaign_id)


@campaigns_app.command("resume")
def campaigns_resume(campaign_id: int) -> None:
    """Carry on a paused campaign."""
    _steer("resume", campaign_id)


@campaigns_app.command("cancel")
def campaigns_cancel(campaign_id: int) -> None:
    """Stop a campaign for good."""
    _steer("cancel", campaign_id)


def _hoist_data_dir(argv: list[str]) -> list[str]:
    """Move `--data-dir X` to the front, so it works after any subcommand too."""
    rest, hoisted = [], []
    items = iter(argv)
    for item in items:
        if item == "--data-dir":
            hoisted += [item, next(items, "")]
        elif item.startswith("--data-dir="):
            hoisted.append(item)
        else:
            rest.append(item)
    return hoisted + rest


def main() -> None:
    """The console script: `newsletter ...`."""
    app(args=_hoist_data_dir(sys.argv[1:]), prog_name="newsletter")


if __name__ == "__main__":
    main()
