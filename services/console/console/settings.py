"""Console settings, read from CONSOLE_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from ccshared.auth import DEFAULT_ISSUER, DEV_KEY_FINGERPRINT, fingerprint, load_private_key
from ccshared.settings import LOCAL_PG, ServiceSettings, env_name

# The committed development key pair's private half: only services with CC_DEVELOPMENT=1
# accept the tokens it signs, and the console signs with it only then.
DEV_PRIVATE_KEY_FILE = (
    Path(__file__).resolve().parents[3] / "deploy/local/dev-token-key.DEV-ONLY.pem"
)


class ConsoleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore", frozen=True)

    service_name: str = "console"
    database_url: SecretStr = SecretStr(f"{LOCAL_PG}/console")

    # The APIs the console calls on its users' behalf (server to server: the browser talks
    # only to the console).
    router_url: str = "http://127.0.0.1:8002"
    sla_url: str = "http://127.0.0.1:8003"
    feedback_url: str = "http://127.0.0.1:8004"
    upstream_timeout_s: float = Field(default=10.0, gt=0, le=120)

    # The token issuer's Ed25519 private key (PEM text, or the path of a PEM file): the console
    # signs its users' short-lived API tokens with it, and the APIs check them with the public
    # half (*_AUTH_PUBLIC_KEY). Empty: the committed development key, only with CC_DEVELOPMENT=1.
    token_private_key: SecretStr = SecretStr("")
    token_issuer: str = Field(default=DEFAULT_ISSUER, min_length=1, max_length=200)
    # An API token lives this long and is minted again (on the server) before it expires; the
    # browser never sees one.
    token_ttl_s: float = Field(default=300.0, ge=30, le=3600)

    # Sessions: an HttpOnly, SameSite=Strict cookie; Secure when the request came over TLS
    # ("auto", also behind a proxy that says so in X-Forwarded-Proto), or always, or never.
    session_ttl_s: float = Field(default=12 * 3600, ge=60, le=7 * 86_400)
    session_idle_s: float = Field(default=2 * 3600, ge=60, le=86_400)
    cookie_secure: Literal["auto", "always", "never"] = "auto"
    # Sign-in throttling: failures counted per account and per client address over a window;
    # past the limit, sign-ins are refused (429) until the window has moved on.
    sign_in_window_s: float = Field(default=900.0, ge=10, le=86_400)
    sign_in_max_failures_per_account: int = Field(default=5, ge=1, le=1000)
    sign_in_max_failures_per_address: int = Field(default=20, ge=1, le=100_000)
    # The proxies whose X-Forwarded-For names the client (their addresses); empty: none.
    trusted_proxies: frozenset[str] = frozenset()

    # The live stream (GET /live, console/live/; docs/live.md). Each replica keeps the last
    # `live_buffer_size` events it read for reconnecting browsers to catch up from (older gaps
    # reload the page's data); each open stream has a queue of `live_queue_size` events, and a
    # stream whose queue fills (a browser too slow to take its events) is closed, so it cannot
    # hold the others back. A comment every `live_heartbeat_s` keeps proxies from closing an
    # idle stream; the session (and an agent's queues, from the router) is checked again every
    # `live_recheck_s`; browsers wait `live_retry_ms` before reconnecting.
    live_buffer_size: int = Field(default=10_000, ge=10, le=1_000_000)
    live_queue_size: int = Field(default=1_000, ge=10, le=100_000)
    live_heartbeat_s: float = Field(default=15.0, gt=0, le=300)
    live_recheck_s: float = Field(default=60.0, gt=0, le=3600)
    live_retry_ms: int = Field(default=3_000, ge=100, le=600_000)
    # Tickets whose holder, owner and queue the replica remembers (from their events), so an
    # agent gets the events of their tickets that name neither (least recently seen forgotten).
    live_tracked_tickets: int = Field(default=100_000, ge=100, le=10_000_000)
    # How often the reader looks for partitions added to its topics.
    live_metadata_interval_s: float = Field(default=30.0, gt=0, le=3600)

    @field_validator("token_private_key")
    @classmethod
    def _real_private_key(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        raw = value.get_secret_value()
        development = bool(info.data.get("development"))
        if not raw:
            if not development:
                raise ValueError(
                    f"{env_name(cls, info)} is not set: give the token issuer's Ed25519 private "
                    "key (PEM text or file), or set CC_DEVELOPMENT=1 to sign with the "
                    "development key"
                )
            return value
        key = load_private_key(raw)  # ValueError names what is wrong with it
        if fingerprint(key.public_key()) == DEV_KEY_FINGERPRINT and not development:
            raise ValueError(
                f"{env_name(cls, info)} is the development key, whose private half is public "
                "(deploy/local/): give your own, or set CC_DEVELOPMENT=1 on a development machine"
            )
        return value

    def signing_key(self) -> Ed25519PrivateKey:
        raw = self.token_private_key.get_secret_value()
        return load_private_key(raw or str(DEV_PRIVATE_KEY_FILE))
