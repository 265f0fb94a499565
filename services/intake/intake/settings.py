"""Intake settings, read from INTAKE_* environment variables."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ccshared.settings import LOCAL_PG, ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore", frozen=True)

    service_name: str = "intake"
    database_url: SecretStr = SecretStr(f"{LOCAL_PG}/intake")
