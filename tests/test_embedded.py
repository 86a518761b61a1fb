"""`newsletter up`: the embedded mode starts everything and stops every child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from newsletter.embedded import PROJECT_ROOT
from tests.conftest import free_port


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_up_runs_the_service_and_sigterm_stops_every_child(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("NEWSLETTER_") and k not in {"DATABASE_URL", "REDIS_URL", "SMTP_URL"}
    }
    port, smtp_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter.cli", "up", "--data-dir", str(tmp_path / "data"),
         "--port", str(port), "--smtp-port", str(smtp_port)],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "newsletter up did not serve /healthz in 60 s"
            time.sleep(0.2)

        assert httpx.get(f"{base}/dev/inbox.json").json() == []
        assert (tmp_path / "data" / "newsletter.db").exists()
        assert (tmp_path / "data" / "redis.sock").exists()
        children = _descendants(process.pid)
        assert len(children) >= 4  # redis, worker (+ its pool), beat, web

        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
        assert process.returncode == 0, output
        assert f"{base}/subscribe" in output and f"{base}/dev/inbox" in output
        assert [pid for pid in children if _alive(pid)] == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
