"""Feedback settings, read from FEEDBACK_* environment variables."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ccshared.settings import LOCAL_PG, ServiceSettings


class FeedbackSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FEEDBACK_", extra="ignore", frozen=True)

    service_name: str = "feedback"
    database_url: SecretStr = SecretStr(f"{LOCAL_PG}/feedback")
