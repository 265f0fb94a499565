"""Router settings, read from ROUTER_* environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from ccshared.settings import LOCAL_PG, ServiceSettings


class RouterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTER_", extra="ignore", frozen=True)

    service_name: str = "router"
    database_url: SecretStr = SecretStr(f"{LOCAL_PG}/router")

    # Signs and checks the UI users' tokens (ccshared.auth). Set a long random value in
    # production (the identity provider that issues the tokens shares it).
    auth_secret: SecretStr = SecretStr("local-dev-router-auth-secret-change-me")

    # The assignment loop runs on every change that can free or need an agent, and at least
    # this often (offer timeouts, overflow).
    assign_interval_s: float = Field(default=0.5, gt=0, le=60)
    # Off only where something else drives assignment rounds (tests call Assigner.tick).
    assign_in_background: bool = True
    # A cached routing policy is re-read this often, so a change made through another
    # replica takes effect here within it.
    policy_cache_s: float = Field(default=1.0, ge=0, le=300)

    @field_validator("auth_secret")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (HS256 wants a 256-bit key)")
        return value
