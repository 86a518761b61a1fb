"""Postfix's smtp-sink as a fast SMTP sink for throughput benchmarks.

    uv run python benchmarks/sink.py [--messages 5000] [--connections 4] [--size-kb 40]

aiosmtpd tops out near 1,000 messages/s, too slow to be the far end of a sending
benchmark. Postfix's `smtp-sink` (a C test server that throws mail away) is
fetched from Debian's postfix package without installing or starting Postfix:
`apt-get download postfix`, `dpkg-deb -x` into `benchmarks/.cache/postfix/`,
and the binary runs with `LD_LIBRARY_PATH` pointing at the package's own
`libpostfix-*.so`. Use it as::

    with SmtpSink() as sink:
        send_lots_of_mail("127.0.0.1", sink.port)
        assert sink.count() == expected

Counting: `smtp-sink -c` writes `sess=S quit=Q mesg=M\\r` to stdout (flushed)
each time a message's final "." is received, and it does so *before* it sends
the 250 reply to that ".". So once a client has read the 250 for its last
message, `count()` (which drains that pipe) is exact, with no waiting.

Run as a script, it checks that the count equals what was sent and measures
plain smtplib (`sendmail`) against a raw DATA path that skips smtplib's
per-message dot-stuffing on pre-stuffed bytes, over 1, 2 and 4 connections.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import select
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
SINK_RELPATH = Path("usr/sbin/smtp-sink")
LIB_RELPATH = Path("usr/lib/postfix")
_COUNTERS = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")


# --- getting the binary ------------------------------------------------------------------


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)


def _download_postfix_deb(debs: Path) -> Path:
    """The postfix .deb in `debs`, fetched with `apt-get download` if not there yet."""
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob("postfix_*.deb"))
    if found:
        return found[-1]
    result = _run(["apt-get", "download", "postfix"], cwd=debs)
    if result.returncode != 0:  # e.g. a fresh machine whose package lists are empty
        update = _run(["apt-get", "update"])
        if update.returncode != 0:
            raise RuntimeError(f"apt-get update failed:\n{update.stderr}")
        result = _run(["apt-get", "download", "postfix"], cwd=debs)
    found = sorted(debs.glob("postfix_*.deb"))
    if result.returncode != 0 or not found:
        raise RuntimeError(f"apt-get download postfix failed:\n{result.stderr}")
    return found[-1]


def _library_packages(deb: Path) -> list[str]:
    """The shared-library packages that the postfix .deb depends on (first alternatives)."""
    depends = _run(["dpkg-deb", "-f", str(deb), "Depends"]).stdout
    names = [item.split("|")[0].split("(")[0].strip() for item in depends.split(",")]
    return [name for name in names if name.startswith("lib")]


def _missing_libraries(binary: Path) -> list[str]:
    """Shared objects that `ldd` cannot resolve for `binary`, with Postfix's lib dir added."""
    env = {**os.environ, **sink_env(binary)}
    result = subprocess.run(
        ["ldd", str(binary)], capture_output=True, text=True, env=env, check=False
    )
    return [line.split()[0] for line in result.stdout.splitlines() if "not found" in line]


def _is_installed(package: str) -> bool:
    status = _run(["dpkg-query", "-W", "-f=${Status}", package]).stdout
    return status.endswith("installed") and "not-installed" not in status


def ensure_smtp_sink(cache_dir: Path = CACHE_DIR) -> Path:
    """Path to a runnable `smtp-sink`, extracted from Debian's postfix package.

    Postfix is neither installed nor started: the .deb is only downloaded and
    unpacked under `cache_dir` (kept there for later runs). If `ldd` finds a
    system library missing, the postfix package's library dependencies are
    installed with apt-get (which needs root) and named on stderr.
    """
    root = cache_dir / "postfix"
    binary = root / SINK_RELPATH
    deb = _download_postfix_deb(cache_dir / "debs")
    if not binary.exists():
        staging = Path(tempfile.mkdtemp(prefix="postfix-", dir=cache_dir))
        try:
            subprocess.run(["dpkg-deb", "-x", str(deb), str(staging)], check=True)
            if root.exists():  # an earlier, interrupted extraction
                shutil.rmtree(root)
            staging.rename(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    missing = _missing_libraries(binary)
    if missing:
        wanted = [pkg for pkg in _library_packages(deb) if not _is_installed(pkg)]
        print(
            f"smtp-sink: missing {', '.join(missing)}; apt-get install {' '.join(wanted)}",
            file=sys.stderr,
        )
        install = _run(["apt-get", "install", "-y", "--no-install-recommends", *wanted])
        if install.returncode != 0:
            raise RuntimeError(f"apt-get install {' '.join(wanted)} failed:\n{install.stderr}")
        missing = _missing_libraries(binary)
        if missing:
            raise RuntimeError(f"smtp-sink still lacks shared libraries: {', '.join(missing)}")
    return binary


def sink_env(binary: Path) -> dict[str, str]:
    """The environment additions that let `binary` find Postfix's own shared libraries."""
    lib_dir = binary.parents[len(SINK_RELPATH.parts) - 1] / LIB_RELPATH
    paths = [str(lib_dir), *filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(":"))]
    return {"LD_LIBRARY_PATH": ":".join(paths)}


# --- running it --------------------------------------------------------------------------


@dataclass(frozen=True)
class SinkCounters:
    sessions: int = 0  # SMTP sessions ended
    quits: int = 0  # QUIT commands
    messages: int = 0  # messages whose final "." was received


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class SmtpSink:
    """`smtp-sink` listening on host:port, counting the messages it receives.

    It advertises PIPELINING (and 8BITMIME, DSN, ...), accepts any sender and
    recipient, dumps nothing to disk, and answers each message with 250.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        backlog: int = 1024,
        max_clients: int = 256,
        binary: Path | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._port = 0
        self.backlog = backlog
        self.max_clients = max_clients
        self._binary = binary
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._pending = b""
        self._counters = SinkCounters()
        self._reader: threading.Thread | None = None
        self._stopping = threading.Event()
        self.argv: list[str] = []

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("SmtpSink is not started")
        return self._port

    def command(self, binary: Path, port: int) -> list[str]:
        """The smtp-sink command line (see its man page, smtp-sink(1))."""
        argv = [str(binary), "-c"]  # -c: counters on stdout, flushed at every "."
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]  # required when root: drops privileges after bind
        argv += ["-m", str(self.max_clients), f"inet:{self.host}:{port}", str(self.backlog)]
        return argv

    def start(self, timeout: float = 10.0) -> Self:
        binary = self._binary or ensure_smtp_sink()
        env = {**os.environ, **sink_env(binary)}
        for _attempt in range(5):  # a free port can be taken between probe and bind
            port = self._requested_port or _free_port(self.host)
            self.argv = self.command(binary, port)
            # Its warnings ("lost connection", ...) go to a file: an undrained pipe would block it.
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
            )
            if self._wait_ready(proc, port, timeout):
                break
            proc.wait()
            self._stderr.seek(0)
            error = self._stderr.read().decode(errors="replace").strip()
            self._stderr.close()
            if "in use" not in error or self._requested_port:
                raise RuntimeError(f"smtp-sink exited with {proc.returncode}: {error}")
        else:
            raise RuntimeError("smtp-sink: no free port after 5 attempts")
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        self._proc, self._port = proc, port
        self._reader = threading.Thread(target=self._read_loop, name="smtp-sink-stdout")
        self._reader.daemon = True
        self._reader.start()
        return self

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int, timeout: float) -> bool:
        """True once the sink greets on `port`; False if it exited (e.g. port in use)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, port), timeout=1) as conn:
                    greeting = conn.recv(512)
                    if greeting.startswith(b"220"):
                        conn.sendall(b"QUIT\r\n")
                        conn.recv(512)
                        return True
            except OSError:
                time.sleep(0.02)
        proc.kill()
        raise TimeoutError(f"smtp-sink did not greet on {self.host}:{port} in {timeout}s")

    def _read_loop(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        while not self._stopping.is_set():
            try:
                readable, _, _ = select.select([fd], [], [], 0.5)
            except (OSError, ValueError):  # closed by stop()
                return
            if readable and not self._drain():
                return

    def _drain(self) -> bool:
        """Read what smtp-sink has written so far; False at end of file."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.stdout is None or proc.stdout.closed:
                return False
            fd = proc.stdout.fileno()
            chunks = [self._pending]
            alive = True
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if not chunk:
                    alive = False
                    break
                chunks.append(chunk)
            data = b"".join(chunks)
            *records, self._pending = data.split(b"\r")
            for record in reversed(records):
                match = _COUNTERS.fullmatch(record)
                if match:
                    sess, quits, mesg = (int(group) for group in match.groups())
                    self._counters = SinkCounters(sess, quits, mesg)
                    break
            return alive

    def counters(self) -> SinkCounters:
        """smtp-sink's counters now. Sessions include start()'s readiness probe."""
        self._drain()
        with self._lock:
            return self._counters

    def count(self) -> int:
        """Messages received so far (each one's final "." seen), exact once replies are read."""
        return self.counters().messages

    def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._drain()
        self._stopping.set()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=2)
        with self._lock:
            if proc.stdout is not None:
                proc.stdout.close()
            if self._stderr is not None:
                self._stderr.close()
            self._proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- the benchmark -----------------------------------------------------------------------

SENDER = "bench@news.example.org"
Sender = Callable[[smtplib.SMTP, str, bytes], None]


def make_message(size: int) -> bytes:
    """A CRLF message of about `size` bytes; some body lines start with "." to be stuffed."""
    head = (
        f"From: Bench <{SENDER}>\r\nTo: reader@example.org\r\n"
        "Subject: Throughput benchmark\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    words = b"spine disc nerve lumbar cervical thoracic scan image treatment relief "
    line = (words * 2)[:76]
    lines = [b"." + line[1:] if i % 40 == 7 else line for i in range(max(1, size // 78))]
    return head + b"\r\n".join(lines) + b"\r\n"


def dot_stuff(message: bytes) -> bytes:
    """What smtplib's data() sends for `message`: dots doubled, CRLF.CRLF appended."""
    stuffed = re.sub(rb"(?m)^\.", b"..", message)
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


def send_sendmail(smtp: smtplib.SMTP, rcpt: str, message: bytes) -> None:
    refused = smtp.sendmail(SENDER, [rcpt], message)
    if refused:
        raise smtplib.SMTPRecipientsRefused(refused)


def send_raw(smtp: smtplib.SMTP, rcpt: str, stuffed: bytes) -> None:
    """MAIL, RCPT, DATA one reply at a time, then the pre-stuffed bytes in one send."""
    code, reply = smtp.mail(SENDER)
    if code != 250:
        raise smtplib.SMTPSenderRefused(code, reply, SENDER)
    code, reply = smtp.rcpt(rcpt)
    if code not in (250, 251):
        raise smtplib.SMTPRecipientsRefused({rcpt: (code, reply)})
    smtp.putcmd("data")
    code, reply = smtp.getreply()
    if code != 354:
        raise smtplib.SMTPDataError(code, reply)
    smtp.send(stuffed)
    code, reply = smtp.getreply()
    if code != 250:
        raise smtplib.SMTPDataError(code, reply)


def blast(port: int, send: Sender, payload: bytes, messages: int, connections: int) -> float:
    """Send `messages` over `connections` threads (one SMTP session each); seconds taken.

    Sessions are opened and greeted before the clock starts and closed after it stops.
    """
    shares = [messages // connections + (i < messages % connections) for i in range(connections)]
    ready = threading.Barrier(connections + 1)
    ended = [0.0] * connections
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
                smtp.ehlo("bench.example.org")
                ready.wait()
                for n in range(shares[index]):
                    send(smtp, f"reader{index}-{n}@example.org", payload)
                ended[index] = time.perf_counter()
        except BaseException as exc:
            errors.append(exc)
            ready.abort()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return max(ended) - started


def measure(send: Sender, payload: bytes, messages: int, connections: int) -> tuple[int, float]:
    """A fresh sink, `messages` sent to it; the sink's count and the messages per second."""
    with SmtpSink() as sink:
        seconds = blast(sink.port, send, payload, messages, connections)
        received = sink.count()
    if received != messages:
        raise SystemExit(f"smtp-sink counted {received} messages, {messages} were sent")
    return received, messages / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5_000, help="per run")
    parser.add_argument("--connections", type=int, default=4, help="for the count check")
    parser.add_argument("--size-kb", type=int, default=40, help="message size for the rates")
    parser.add_argument("--repeat", type=int, default=3, help="runs per rate; best is kept")
    args = parser.parse_args()

    binary = ensure_smtp_sink()
    with SmtpSink() as sink:
        print("smtp-sink:", " ".join(sink.argv))
        print("  with", " ".join(f"{k}={v}" for k, v in sink_env(binary).items()))

    small = make_message(400)
    received, rate = measure(send_sendmail, small, args.messages, args.connections)
    print(
        f"count check: sent {args.messages} small ({len(small)} B) messages over "
        f"{args.connections} connections with smtplib.sendmail; smtp-sink counted {received}; "
        f"{rate:,.0f} msg/s"
    )

    big = make_message(args.size_kb * 1024)
    stuffed = dot_stuff(big)
    methods: dict[str, tuple[Sender, bytes]] = {
        "sendmail": (send_sendmail, big),
        "raw_data": (send_raw, stuffed),
    }
    print(f"\n{len(big):,} B messages, {args.messages} per run, best of {args.repeat}:")
    print(f"{'connections':>11} {'sendmail msg/s':>15} {'raw DATA msg/s':>15} {'ratio':>6}")
    results: dict[str, dict[str, float]] = {}
    for connections in (1, 2, 4):
        row: dict[str, float] = {}
        for name, (send, payload) in methods.items():
            rates = [
                measure(send, payload, args.messages, connections)[1] for _ in range(args.repeat)
            ]
            row[name] = round(max(rates))
        results[str(connections)] = row
        print(
            f"{connections:>11} {row['sendmail']:>15,.0f} {row['raw_data']:>15,.0f} "
            f"{row['raw_data'] / row['sendmail']:>6.2f}"
        )
    print(
        json.dumps(
            {
                "benchmark": "sink",
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "count_check": {"sent": args.messages, "counted": received, "msg_s": round(rate)},
                "message_bytes": len(big),
                "msg_s": results,
            }
        )
    )


if __name__ == "__main__":
    main()
