"""Every knob of the service, read from the environment or a .env file.

The defaults describe the embedded mode: everything lives in one data folder
(SQLite file, the embedded Redis socket, the dev inbox), so `newsletter up`
works on a machine with nothing installed. A fleet overrides DATABASE_URL,
REDIS_URL and SMTP_URL and runs each process on its own.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration; environment variables are NEWSLETTER_<FIELD> unless noted."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSLETTER_", env_file=".env", extra="ignore", populate_by_name=True
    )

    data_dir: Path = Field(default=Path("data"))
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "NEWSLETTER_DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "NEWSLETTER_REDIS_URL")
    )
    smtp_url: str | None = Field(
        default=None, validation_alias=AliasChoices("SMTP_URL", "NEWSLETTER_SMTP_URL")
    )
    base_url: str | None = None
    secret_key: str | None = None

    host: str = "127.0.0.1"
    port: int = 8000
    smtp_port: int = 8025
    dev_inbox: bool | None = None

    celery_queue: str = "newsletter"
    worker_concurrency: int = 2

    publisher_name: str = "Spine & Pain Health Letter"
    publisher_address: str = "100 Example Avenue, Suite 200, Tampa, FL 33602, USA"
    from_name: str = "Spine & Pain Health Letter"
    from_address: str = "newsletter@example.org"
    default_timezone: str = "America/New_York"

    # An address for mail-based unsubscribes, added to List-Unsubscribe beside the
    # one-click URL. Set it only if something reads that mailbox and unsubscribes.
    unsubscribe_mailto: str | None = None

    # DKIM signing is on when a private key is configured; the domain defaults
    # to the From address's domain.
    dkim_private_key_path: Path | None = None
    dkim_selector: str = "newsletter"
    dkim_domain: str | None = None

    # The weekly digest goes out on this ISO weekday (1 = Monday) at this hour of
    # each subscriber's own time zone; later than `digest_lateness_hours` it is skipped.
    digest_weekday: int = Field(default=2, ge=1, le=7)
    digest_hour: int = Field(default=8, ge=0, le=23)
    digest_lateness_hours: int = Field(default=6, ge=1, le=72)

    # The campaign engine: batch sizes, and limits shared by every worker via Redis.
    campaign_batch_size: int = 200
    # A 4xx or dropped connection is retried after about this long, doubling per try.
    campaign_retry_base_seconds: float = 30.0
    smtp_rate_per_second: float = 0  # 0: as fast as the relay takes them
    smtp_max_connections: int = 8
    stale_sending_seconds: int = 600

    consent_text_version: str = "2026-11-01"
    confirm_token_max_age_seconds: int = 7 * 24 * 3600
    resend_confirmation_after_seconds: int = 120
    max_request_bytes: int = 64 * 1024

    @property
    def embedded(self) -> bool:
        """True when no external Redis is configured: `newsletter up` runs one itself."""
        return self.redis_url is None

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def inbox_dir(self) -> Path:
        return self.resolved_data_dir / "inbox"

    @property
    def redis_socket(self) -> Path:
        return self.resolved_data_dir / "redis.sock"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'newsletter.db'}"

    @property
    def effective_redis_url(self) -> str:
        if self.redis_url:
            return self.redis_url
        return f"redis+socket://{self.redis_socket}"

    @property
    def effective_smtp_url(self) -> str:
        return self.smtp_url or f"smtp://127.0.0.1:{self.smtp_port}"

    @property
    def effective_base_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def dev_inbox_enabled(self) -> bool:
        return self.embedded if self.dev_inbox is None else self.dev_inbox

    @property
    def effective_secret_key(self) -> str:
        """The signing key; the embedded mode keeps a generated one in its data folder."""
        if self.secret_key:
            return self.secret_key
        key_file = self.resolved_data_dir / "secret_key"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_urlsafe(32))
            key_file.chmod(0o600)
        return key_file.read_text().strip()

    @property
    def sending_domain(self) -> str:
        return self.from_address.rpartition("@")[2]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
