"""SLA settings, read from SLA_* environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from ccshared.settings import LOCAL_PG, UserTokenSettings


class SLASettings(UserTokenSettings):
    model_config = SettingsConfigDict(env_prefix="SLA_", extra="ignore", frozen=True)

    service_name: str = "sla"
    database_url: SecretStr = SecretStr(f"{LOCAL_PG}/sla")

    # SLA events are time-critical: in the benchmark a few percent of them waited for the
    # relay's 2 s poll (its NOTIFY wake-up came while it was still draining the batch before).
    outbox_poll_interval_s: float = Field(default=0.25, gt=0, le=60)
    # The timer scanner: how many due timers one transaction fires, and the longest it sleeps
    # when nothing is due (it wakes earlier for the next due timer).
    timer_batch_size: int = Field(default=500, ge=1, le=10_000)
    timer_poll_interval_s: float = Field(default=0.2, gt=0, le=60)
    timer_pool_size: int = Field(default=2, ge=1, le=50)
    # Another replica's policy or calendar change is seen within this long.
    config_cache_s: float = Field(default=5.0, ge=0, le=600)
