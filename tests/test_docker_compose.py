"""docker-compose.yml (fleet mode) is valid and runs the same entry points as `newsletter up`.

`docker-compose config` resolves and validates the file without a Docker engine;
the rest compares its commands, token by token, with the modules they name and
with the child commands of the embedded mode.
"""

from __future__ import annotations

import importlib
import os
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"

APP_SERVICES = ("migrate", "web", "worker", "beat")
LONG_RUNNING = ("postgres", "redis", "mailpit", "web", "worker")
ALL_SERVICES = ("postgres", "redis", "mailpit", *APP_SERVICES)
# Variables that docker-compose interpolates from the caller's environment.
INTERPOLATED = ("NEWSLETTER_SECRET_KEY", "NEWSLETTER_BASE_URL")
# Settings that also read an unprefixed variable (see newsletter/config.py).
UNPREFIXED = ("DATABASE_URL", "REDIS_URL", "SMTP_URL")


def _docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail(
            "the docker-compose binary is not on PATH; install it with "
            "`apt-get update && apt-get install -y docker-compose`",
            pytrace=False,
        )
    return binary


def _run_config(tmp_path: Path, secret_key: str | None) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with only the given secret set, and no .env file read."""
    env = {k: v for k, v in os.environ.items() if k not in INTERPOLATED}
    if secret_key is not None:
        env["NEWSLETTER_SECRET_KEY"] = secret_key
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    return subprocess.run(
        [_docker_compose(), "--env-file", str(empty_env_file), "-f", str(COMPOSE_FILE), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _resolved_compose(tmp_path: Path, secret_key: str) -> dict[str, Any]:
    result = _run_config(tmp_path, secret_key)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    config = yaml.safe_load(result.stdout)
    assert isinstance(config, dict)
    return config


def _argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(t) for t in command]


def _healthcheck_argv(healthcheck: dict[str, Any]) -> list[str]:
    test = healthcheck["test"]
    if isinstance(test, str):
        return shlex.split(test)
    kind, *rest = test
    if kind == "CMD-SHELL":
        return shlex.split(" ".join(rest))
    assert kind == "CMD", f"unexpected healthcheck form {test!r}"
    return [str(t) for t in rest]


def _after(argv: list[str], program: str) -> list[str]:
    """The tokens after `program` (a bare name, a path to it, or `python -m program`)."""
    for i, token in enumerate(argv):
        if Path(token).name == program:
            return argv[i + 1 :]
    raise AssertionError(f"{program} is not run by {argv!r}")


def _option(tokens: list[str], *names: str) -> str | None:
    for i, token in enumerate(tokens):
        for name in names:
            if token == name and i + 1 < len(tokens):
                return tokens[i + 1]
            if token.startswith(f"{name}="):
                return token.split("=", 1)[1]
    return None


def _celery_entry(argv: list[str]) -> tuple[str | None, str]:
    """(the -A app, the subcommand) of a celery command line."""
    tokens = _after(argv, "celery")
    app = _option(tokens, "-A", "--app")
    takes_value = {"-A", "--app", "-b", "--broker", "--workdir", "--config", "--loader"}
    skip = False
    for token in tokens:
        if skip:
            skip = False
        elif token in takes_value:
            skip = True
        elif not token.startswith("-"):
            return app, token
    raise AssertionError(f"no celery subcommand in {argv!r}")


def _uvicorn_entry(argv: list[str]) -> tuple[bool, str]:
    """(whether --factory is given, the APP target) of a uvicorn command line."""
    tokens = _after(argv, "uvicorn")
    takes_value = {"--host", "--port", "--log-level", "--app-dir", "--workers", "--env-file"}
    targets, skip = [], False
    for token in tokens:
        if skip:
            skip = False
        elif token in takes_value:
            skip = True
        elif not token.startswith("-"):
            targets.append(token)
    assert len(targets) == 1, f"expected one APP target in {argv!r}, got {targets!r}"
    return "--factory" in tokens, targets[0]


def _import_target(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _fleet_settings(environment: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The settings an app container reads: its compose environment and nothing else."""
    from newsletter.config import Settings

    for key in list(os.environ):
        if key.startswith("NEWSLETTER_") or key in UNPREFIXED:
            monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, str(value))
    return Settings(_env_file=None)


@pytest.fixture
def project_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """worker.py and scheduler.py are top-level modules; celery imports them from /app."""
    monkeypatch.syspath_prepend(str(ROOT))


def test_compose_config_is_valid_and_complete(tmp_path: Path) -> None:
    config = _resolved_compose(tmp_path, "compose-test-secret")
    services = config["services"]

    assert set(ALL_SERVICES) <= set(services), f"missing: {set(ALL_SERVICES) - set(services)}"
    for name in LONG_RUNNING:
        healthcheck = services[name].get("healthcheck")
        assert healthcheck, f"{name} has no healthcheck"
        assert not healthcheck.get("disable"), f"{name} has its healthcheck disabled"
        assert _healthcheck_argv(healthcheck) not in ([], ["NONE"]), f"{name}: empty healthcheck"

    assert services["postgres"]["image"] == "postgres:15"
    assert "pg_isready" in _healthcheck_argv(services["postgres"]["healthcheck"])
    assert services["redis"]["image"] == "redis:7"
    assert _healthcheck_argv(services["redis"]["healthcheck"])[-2:] == ["redis-cli", "ping"]
    assert services["mailpit"]["image"].startswith("axllent/mailpit")

    # The app services share one image and depend on a migrated, healthy database.
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1, f"app services use different images: {images}"
    assert services["migrate"]["build"]["dockerfile"] == "Dockerfile"
    assert (ROOT / "Dockerfile").is_file()
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker", "beat"):
        conditions = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert conditions == {
            "postgres": "service_healthy",
            "redis": "service_healthy",
            "migrate": "service_completed_successfully",
        }, name
        assert services[name]["environment"]["NEWSLETTER_SECRET_KEY"] == "compose-test-secret"


def test_compose_environment_uses_real_setting_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = _resolved_compose(tmp_path, "compose-test-secret")["services"]
    environment = services["web"]["environment"]
    for name in APP_SERVICES:
        assert services[name]["environment"] == environment, f"{name} has its own environment"

    settings = _fleet_settings(environment, monkeypatch)

    assert settings.database_url == (
        "postgresql+psycopg://newsletter:newsletter@postgres:5432/newsletter"
    )
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.smtp_url == "smtp://mailpit:1025"
    assert settings.base_url == "http://localhost:8000"
    assert settings.secret_key == "compose-test-secret"
    assert settings.data_dir == Path("/data")
    assert not settings.embedded, "a fleet must use its Redis service, not the embedded one"


def test_compose_commands_match_the_entry_points(
    tmp_path: Path, project_on_path: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.embedded import child_commands

    services = _resolved_compose(tmp_path, "compose-test-secret")["services"]
    commands = {name: _argv(services[name]["command"]) for name in APP_SERVICES}
    settings = _fleet_settings(services["worker"]["environment"], monkeypatch)
    embedded = child_commands(settings)

    # worker: `celery -A worker worker`, on the configured queue, and worker.py exposes `app`.
    assert commands["worker"][0] == "celery"
    assert _celery_entry(commands["worker"]) == ("worker", "worker")
    assert _celery_entry(embedded["worker"]) == ("worker", "worker")
    queues = _option(_after(commands["worker"], "celery"), "-Q", "--queues")
    assert queues == settings.celery_queue == _option(embedded["worker"], "-Q", "--queues")
    worker_app = importlib.import_module("worker").app
    assert worker_app.main == "newsletter"
    assert _celery_entry(_healthcheck_argv(services["worker"]["healthcheck"])) == (
        "worker",
        "inspect",
    )

    # beat: `celery -A scheduler beat`, and scheduler.py exposes `app` with a schedule.
    assert commands["beat"][0] == "celery"
    assert _celery_entry(commands["beat"]) == ("scheduler", "beat")
    assert _celery_entry(embedded["beat"]) == ("scheduler", "beat")
    scheduler_app = importlib.import_module("scheduler").app
    assert scheduler_app.conf.beat_schedule, "scheduler.app has an empty beat_schedule"

    # web: `uvicorn --factory newsletter.web.app:create_app`, a callable that builds the app.
    assert commands["web"][0] == "uvicorn"
    factory, target = _uvicorn_entry(commands["web"])
    assert factory, "web must pass --factory: create_app is a factory, not an app"
    assert (factory, target) == _uvicorn_entry(embedded["web"])
    assert target == "newsletter.web.app:create_app"
    create_app = _import_target(target)
    assert callable(create_app)
    web_port = _option(commands["web"], "--port")
    health_url = next(t for t in _healthcheck_argv(services["web"]["healthcheck"]) if "http" in t)
    assert f"http://localhost:{web_port}/healthz" in health_url

    from fastapi.testclient import TestClient
    from sqlalchemy.orm import sessionmaker

    health = TestClient(create_app(settings, session_factory=sessionmaker())).get("/healthz")
    assert (health.status_code, health.text) == (200, "ok")

    # migrate: `newsletter db upgrade`, the console script of pyproject.toml.
    import typer.main

    assert commands["migrate"] == ["newsletter", "db", "upgrade"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert callable(_import_target(scripts["newsletter"]))
    cli_module = importlib.import_module(scripts["newsletter"].partition(":")[0])
    cli = typer.main.get_command(cli_module.app)
    db_group = cli.commands["db"]
    assert "upgrade" in db_group.commands


def test_compose_config_requires_the_secret_key(tmp_path: Path) -> None:
    result = _run_config(tmp_path, secret_key=None)

    assert result.returncode != 0, "docker-compose config passed without NEWSLETTER_SECRET_KEY"
    assert "NEWSLETTER_SECRET_KEY" in result.stderr
