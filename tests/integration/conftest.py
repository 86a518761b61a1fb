"""A running service for integration tests: real web and worker processes.

Each backend gets its own database, Celery queue, web server (uvicorn) and
worker (celery), all talking to the real Redis and to an SMTP sink on loopback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from newsletter.db import make_engine
from newsletter.delivery.dev_inbox import start_dev_inbox
from newsletter.embedded import PROJECT_ROOT
from tests.conftest import SmtpSink, create_database, drop_database, free_port, migrate


@dataclass
class RunningService:
    base_url: str
    engine: Engine
    sink: SmtpSink
    processes: dict[str, subprocess.Popen[bytes]]
    env: dict[str, str]

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10)


def _wait_for_web(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"web process exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("web process did not answer /healthz in time")


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", "--loglevel", "INFO",
         "--concurrency", "2", "--queues", env["NEWSLETTER_CELERY_QUEUE"], "--without-mingle",
         "--without-gossip"],
        cwd=PROJECT_ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.fixture(scope="module")
def service(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    folder = tmp_path_factory.mktemp(f"service-{backend}")
    name = f"newsletter_it_{uuid.uuid4().hex[:8]}"
    url = create_database(backend, name)
    engine = make_engine(url)
    migrate(engine)
    smtp_port, web_port = free_port(), free_port()
    controller = start_dev_inbox(folder / "inbox", host="127.0.0.1", port=smtp_port)
    sink = SmtpSink(folder / "inbox", smtp_port, controller.handler)
    base_url = f"http://127.0.0.1:{web_port}"
    env = dict(
        os.environ,
        DATABASE_URL=url,
        SMTP_URL=sink.url,
        NEWSLETTER_CELERY_QUEUE=f"it-{uuid.uuid4().hex[:8]}",
        NEWSLETTER_BASE_URL=base_url,
        NEWSLETTER_DATA_DIR=str(folder / "data"),
        NEWSLETTER_RESEND_CONFIRMATION_AFTER_SECONDS="0",
    )
    log = folder / "processes.log"
    processes = {
        "web": subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "newsletter.web.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(web_port),
                "--log-level",
                "warning",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        ),
        "worker": start_worker(env, log),
    }
    try:
        _wait_for_web(base_url, processes["web"])
        yield RunningService(base_url, engine, sink, processes, env)
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        controller.stop()
        engine.dispose()
        drop_database(backend, name)
        if sys.exc_info()[0] is not None:
            print(log.read_text())
