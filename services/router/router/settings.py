"""Router settings, read from ROUTER_* environment variables."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ccshared.settings import LOCAL_PG, ServiceSettings


class RouterSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTER_", extra="ignore", frozen=True)

    service_name: str = "router"
    database_url: SecretStr = SecretStr(f"{LOCAL_PG}/router")
