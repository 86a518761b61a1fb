"""The `newsletter` command, run as a real process against each backend."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import Cli


def test_help_reads_well() -> None:
    result = Cli(dict(os.environ))("--help")
    for command in ("up", "db", "topics", "subscribers"):
        assert command in result.stdout


def test_topics_list(cli: Cli) -> None:
    output = cli("topics", "list").stdout
    assert "spine-mri" in output and "Sciatica & back pain" in output


def test_add_list_export_unsubscribe_and_erase(cli: Cli) -> None:
    added = cli("subscribers", "add", "Ivy@Example.org", "-t", "headaches", "-t", "spine-mri",
                "--name", "Ivy", "--timezone", "Asia/Tokyo", "--preconfirmed")  # fmt: skip
    assert "Ivy@example.org: added" in added.stdout
    assert "Ivy@example.org" in cli("subscribers", "list", "--status", "active").stdout

    record = json.loads(cli("subscribers", "export", "--email", "ivy@example.org").stdout)
    assert record["topics"] == ["spine-mri", "headaches"]
    assert record["consents"][0]["source"] == "cli"

    assert "unsubscribed" in cli("subscribers", "unsubscribe", "ivy@example.org").stdout
    assert "erased" in cli("subscribers", "erase", "ivy@example.org", "--yes").stdout
    gone = cli("subscribers", "export", "--email", "ivy@example.org", ok=False)
    assert gone.returncode == 1 and "no subscriber" in gone.stderr
    again = cli("subscribers", "add", "ivy@example.org", "-t", "headaches", "--preconfirmed")
    assert "skipped" in again.stdout


def test_add_refuses_bad_input_with_a_message(cli: Cli) -> None:
    bad_topic = cli("subscribers", "add", "a@example.org", "-t", "astrology", ok=False)
    assert bad_topic.returncode == 1 and "unknown topic(s): astrology" in bad_topic.stderr
    bad_address = cli("subscribers", "add", "nope", "-t", "headaches", ok=False)
    assert bad_address.returncode == 1 and "email" in bad_address.stderr
    assert "0 subscriber(s)" in cli("subscribers", "list").stderr


def test_import_reports_bad_rows_and_keeps_the_good_ones(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "list.csv"
    source.write_text(
        "email,name,topics,timezone\n"
        "one@example.org,One,spine-mri headaches,Europe/Paris\n"
        "not-an-address,Two,headaches,\n"
        "three@example.org,Three,astrology,\n"
        "four@example.org,,neck-pain,\n",
        encoding="utf-8",
    )
    result = cli("subscribers", "import", str(source), "--preconfirmed")
    assert "2 added" in result.stdout and "2 rejected" in result.stdout
    assert "line 3: email" in result.stderr
    assert "line 4: unknown topic(s): astrology" in result.stderr
    exported = json.loads(cli("subscribers", "export").stdout)
    assert sorted(row["email"] for row in exported) == ["four@example.org", "one@example.org"]


def test_data_dir_works_before_or_after_the_subcommand(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"NEWSLETTER_DATA_DIR", "DATABASE_URL"}}
    run = Cli(env)
    data = str(tmp_path / "elsewhere")
    run("db", "upgrade", "--data-dir", data)
    run("--data-dir", data, "subscribers", "add", "kai@example.org", "-t", "headaches",
        "--preconfirmed")  # fmt: skip
    assert "kai@example.org" in run("subscribers", "list", "--data-dir", data).stdout
    assert (tmp_path / "elsewhere" / "newsletter.db").exists()


def test_campaign_commands_explain_what_they_refuse(cli: Cli) -> None:
    missing = cli("campaigns", "schedule", "999", ok=False)
    assert missing.returncode == 1 and "no campaign 999" in missing.stderr
    naive = cli("campaigns", "plan-digest", "--at", "2026-12-01T08:00:00", ok=False)
    assert naive.returncode == 1 and "UTC offset" in naive.stderr
    early = cli("campaigns", "plan-digest", "--at", "2026-11-30T00:00:00+00:00")
    assert "Nobody's send time has come yet" in early.stdout
    cli("subscribers", "add", "kenji@example.org", "-t", "spine-mri",
        "--timezone", "Asia/Tokyo", "--preconfirmed")  # fmt: skip
    due = cli("campaigns", "plan-digest", "--at", "2026-12-01T08:00:00+09:00")
    assert "Campaign 1: 0 queued" in due.stdout  # due in Tokyo, but nothing new to send
    assert "Weekly digest 2026-W49" in cli("campaigns", "list").stdout
