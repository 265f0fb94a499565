"""Intake settings, read from INTAKE_* environment variables."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from ccshared.settings import LOCAL_PG, ServiceSettings
from ccshared.webhooks import WebhookAddressRules


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore", frozen=True)

    service_name: str = "intake"
    database_url: SecretStr = SecretStr(f"{LOCAL_PG}/intake")

    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    # The largest contact.received event (which carries the whole stored contact) intake
    # accepts; larger is a 413. Comfortably below the producer's and broker's 1 MiB message
    # limit, which also counts the record batch around it.
    max_contact_bytes: int = Field(default=524_288, ge=16_384, le=1_000_000)
    # Raw e-mails (message/rfc822), and JSON bodies over `parse_inline_max_bytes`, are parsed
    # in worker processes (intake.tasks.parse_pool), each within a time budget; 0 workers parses
    # in a thread of the service's process instead (no budget, and the GIL is shared with the
    # event loop). Beyond `parse_max_pending` waiting bodies per process, or
    # `parse_max_pending_per_key` of one key (0: a quarter of `parse_max_pending`), the next is
    # a 503; so is a body that found no free worker within `parse_max_wait_s`. Keys take turns
    # at the workers; the budget counts from the start of a body's own parse.
    parse_workers: int = Field(default=1, ge=0, le=16)
    parse_budget_s: float = Field(default=5.0, gt=0, le=60)
    parse_max_pending: int = Field(default=16, ge=1, le=1_000)
    parse_max_pending_per_key: int = Field(default=0, ge=0, le=1_000)
    parse_max_wait_s: float = Field(default=10.0, gt=0, le=300)
    parse_inline_max_bytes: int = Field(default=65_536, ge=0)
    batch_max_items: int = Field(default=100, ge=1, le=500)
    default_phone_region: str = Field(default="CN", pattern=r"^[A-Z]{2}$")
    max_future_skew_s: int = Field(default=300, ge=0, le=86_400)
    public_base_url: str = "http://127.0.0.1:8001"

    # Serve POST /v1/contacts as plain ASGI beside FastAPI (intake.api.fast); false routes it
    # through FastAPI like every other operation.
    fast_path: bool = True

    # Group commit: contacts arriving together are written in one transaction.
    writer_max_batch: int = Field(default=256, ge=1, le=5_000)
    writer_concurrency: int = Field(default=1, ge=1, le=32)
    writer_pool_size: int = Field(default=4, ge=1, le=100)
    writer_linger_s: float = Field(default=0.002, ge=0, le=0.1)

    # API keys: verified keys are cached this long (a revocation takes effect within it).
    api_key_cache_s: float = Field(default=10.0, ge=0, le=600)
    # A key's rate limit is one bucket in PostgreSQL shared by every process; each process
    # leases the key's rate over this many seconds at a time (one query per lease), so the
    # processes together exceed the limit by at most that much each.
    rate_lease_s: float = Field(default=0.1, gt=0, le=10)
    # This many requests with a missing or invalid key from one client address within the
    # window shut the address out (429) until the window ends.
    auth_failure_limit: int = Field(default=20, ge=1, le=100_000)
    auth_failure_window_s: int = Field(default=60, ge=1, le=86_400)
    identity_cache_size: int = Field(default=200_000, ge=0)

    # Outbound messages (message.outbound): e-mail over SMTP, the other channels to each
    # integration's outbound URL (intake.tasks.delivery).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=1, le=65_535)
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = False
    smtp_use_tls: bool = False
    # The From of replies when the e-mail integration registered none.
    mail_from: str = "Contact Center <support@contactcenter.localhost>"
    # Chat and social replies only within this long after the customer's last contact on the
    # channel (0: no window); outside it a reply fails with `reply_window_closed`.
    reply_window_chat_s: float = Field(default=3_600, ge=0)
    reply_window_social_s: float = Field(default=86_400, ge=0)
    delivery_poll_interval_s: float = Field(default=0.5, gt=0, le=60)
    delivery_batch: int = Field(default=64, ge=1, le=1_000)
    delivery_concurrency: int = Field(default=32, ge=1, le=256)
    delivery_timeout_s: float = Field(default=10.0, gt=0, le=120)
    delivery_max_attempts: int = Field(default=6, ge=1, le=50)
    delivery_retry_base_s: float = Field(default=2.0, gt=0)
    delivery_retry_cap_s: float = Field(default=600.0, gt=0)
    # Outbound URLs never go to loopback, private, link-local (metadata), CGNAT, multicast or
    # reserved addresses (ccshared.webhooks). Development only: these comma-separated names,
    # addresses or CIDR networks are allowed anyway (a local receiver), e.g. "127.0.0.1".
    outbound_allow_hosts: str = ""

    @field_validator("outbound_allow_hosts")
    @classmethod
    def _valid_allow_list(cls, value: str) -> str:
        WebhookAddressRules.parse(value)
        return value

    def outbound_address_rules(self) -> WebhookAddressRules:
        return WebhookAddressRules.parse(self.outbound_allow_hosts)

    def reply_windows(self) -> dict[str, timedelta]:
        windows = {"chat": self.reply_window_chat_s, "social": self.reply_window_social_s}
        return {channel: timedelta(seconds=s) for channel, s in windows.items() if s > 0}
