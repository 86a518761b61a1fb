"""Fixtures for the browser tests: the real `newsletter up` service and Debian's chromium.

The service runs exactly as a person starts it on a laptop: `uv run newsletter up`
in the embedded mode (SQLite, its own Redis, the dev inbox), with every
DATABASE_URL / REDIS_URL / SMTP_URL / NEWSLETTER_* variable of the test process
removed from its environment. The browser is the system chromium driven by
Playwright; no browser is ever downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_SHOTS = Path("/tmp/e2e-shots")
STARTUP_TIMEOUT = 60.0
SHUTDOWN_TIMEOUT = 30.0
CLI_TIMEOUT = 60.0
# Variables that would point the service at a fleet instead of its embedded parts.
_FLEET_VARIABLES = {"DATABASE_URL", "REDIS_URL", "SMTP_URL"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def embedded_environment() -> dict[str, str]:
    """The parent's environment minus anything that configures the newsletter."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _FLEET_VARIABLES and not name.startswith("NEWSLETTER_")
    }
    env["NEWSLETTER_RESEND_CONFIRMATION_AFTER_SECONDS"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _log_text(path: Path) -> str:
    return path.read_text("utf-8", "replace") if path.exists() else "(no output)"


def _live_group_members(pgid: int) -> list[str]:
    """Processes (not zombies) still in process group `pgid`, as 'pid command' lines."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:  # the process ended while we looked
            continue
        state, _ppid, pgrp = stat.rpartition(")")[2].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(f"{entry.name} {command}")
    return members


@dataclass
class Service:
    """One running `newsletter up` and what a test needs to talk to it."""

    base_url: str
    data_dir: Path
    env: dict[str, str]
    log_path: Path

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def log(self) -> str:
        return _log_text(self.log_path)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `newsletter --data-dir <data> ARGS...` against this instance's data."""
        return subprocess.run(
            ["uv", "run", "newsletter", "--data-dir", str(self.data_dir), *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )

    def export_subscriber(self, email: str) -> dict[str, Any]:
        result = self.cli("subscribers", "export", "--email", email)
        assert result.returncode == 0, (
            f"`newsletter subscribers export --email {email}` failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
        data: dict[str, Any] = json.loads(result.stdout)
        return data


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200 and response.read() == b"ok")
    except (urllib.error.URLError, OSError):
        return False


def _wait_until_healthy(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not _healthy(url):
        if time.monotonic() > deadline:
            pytest.fail(
                f"`newsletter up` did not answer {url} within {STARTUP_TIMEOUT:.0f} s.\n"
                f"--- its output ---\n{_log_text(log_path)}",
                pytrace=False,
            )
        try:
            # Waiting on the process is the pause between polls, and notices a crash.
            code = process.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(
            f"`newsletter up` exited with status {code} before {url} answered.\n"
            f"--- its output ---\n{_log_text(log_path)}",
            pytrace=False,
        )


def _stop(process: subprocess.Popen[bytes], log_path: Path) -> None:
    """SIGTERM and wait (the supervisor stops its children); kill the group if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            pytest.fail(
                f"`newsletter up` ignored SIGTERM for {SHUTDOWN_TIMEOUT:.0f} s and was killed.\n"
                f"--- its output ---\n{_log_text(log_path)}",
                pytrace=False,
            )
    leftovers = _live_group_members(process.pid)
    if leftovers:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(
            "`newsletter up` exited but left processes running (now killed):\n"
            + "\n".join(leftovers),
            pytrace=False,
        )


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """`uv run newsletter up` on free ports with its data in the test's tmp dir."""
    data_dir = tmp_path / "data"
    port, smtp_port = _free_port(), _free_port()
    env = embedded_environment()
    log_path = tmp_path / "newsletter-up.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                "uv", "run", "newsletter", "up",
                "--data-dir", str(data_dir),
                "--port", str(port),
                "--smtp-port", str(smtp_port),
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(process, f"{base_url}/healthz", log_path)
        yield Service(base_url=base_url, data_dir=data_dir, env=env, log_path=log_path)
    finally:
        _stop(process, log_path)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context; fails the test on any uncaught JavaScript error."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900},
        locale="en-US",
        timezone_id="America/Chicago",
    )
    context.set_default_timeout(15_000)
    expect.set_options(timeout=10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the pages: {errors}"


class Screenshots:
    """Full-page screenshots at desktop and phone widths, kept in two places."""

    SIZES = ((1280, 900), (375, 812))  # (width, height): desktop, then phone

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        SHARED_SHOTS.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def take(self, page: Page, name: str) -> None:
        original = page.viewport_size
        for width, height in self.SIZES:
            page.set_viewport_size({"width": width, "height": height})
            path = self.folder / f"{name}-{width}.png"
            page.screenshot(path=path, full_page=True)
            shutil.copyfile(path, SHARED_SHOTS / path.name)
            self.taken.append(path)
            page_width = page.evaluate("document.documentElement.scrollWidth")
            assert page_width <= width, (
                f"{name} is {page_width} px wide in a {width} px window: it scrolls sideways "
                f"(see {path})"
            )
        if original is not None:
            page.set_viewport_size(original)


@pytest.fixture
def screenshots(tmp_path: Path) -> Screenshots:
    return Screenshots(tmp_path / "screenshots")
