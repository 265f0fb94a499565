"""SLA settings, read from SLA_* environment variables."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ccshared.settings import LOCAL_PG, ServiceSettings


class SLASettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="SLA_", extra="ignore", frozen=True)

    service_name: str = "sla"
    database_url: SecretStr = SecretStr(f"{LOCAL_PG}/sla")
