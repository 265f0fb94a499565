"""Router settings, read from ROUTER_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from ccshared.settings import LOCAL_PG, UserTokenSettings


class RouterSettings(UserTokenSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTER_", extra="ignore", frozen=True)

    service_name: str = "router"
    database_url: SecretStr = SecretStr(f"{LOCAL_PG}/router")

    # The assignment loop runs on every change that can free or need an agent, and at least
    # this often (offer timeouts, overflow).
    assign_interval_s: float = Field(default=0.5, gt=0, le=60)
    # Off only where something else drives assignment rounds (tests call Assigner.tick).
    assign_in_background: bool = True
    # A waiting ticket predicted to breach its next SLA deadline before its queue's recent wait
    # is over goes one priority band up (router/domain/prediction.py); false: plain order.
    predict_breach: bool = True
    # A cached routing policy is re-read this often, so a change made through another
    # replica takes effect here within it.
    policy_cache_s: float = Field(default=1.0, ge=0, le=300)
    # An agent who lets an offer time out moves to this status (reason `missed_offer`), as
    # Twilio TaskRouter does: the offers stop until they are back. `available` keeps them on.
    missed_offer_status: Literal["away", "busy", "offline", "available"] = "away"
    # An agent who declined a ticket, or let its offer time out, is not offered that ticket
    # again for this long; after it, like anyone else (a refusal is per attempt, not for ever).
    refusal_cooldown_s: float = Field(default=60.0, ge=0, le=86_400)
    # The conversation. A reply's or a note's text may be at most this many bytes of UTF-8 (a
    # 413 naming body.text above it).
    message_max_bytes: int = Field(default=64 * 1024, ge=1, le=1024 * 1024)
    # Messaging channels' reply windows in hours after the customer's last message: a reply
    # later than that is refused here (409 reply-window-closed) before intake would refuse to
    # deliver it. A channel left out has none as far as the router knows (intake still
    # enforces its integrations' own windows on delivery).
    reply_window_hours: dict[str, float] = Field(default_factory=lambda: {"social": 24.0})
    # How many of the conversation's last messages GET /v1/tickets/{id} carries.
    detail_messages: int = Field(default=5, ge=0, le=100)
    # The region a phone number searched for without a country code is read in (ISO 3166
    # alpha-2): intake's default for national numbers, so "138 0013 8000" finds +8613800138000.
    phone_region: str = Field(default="CN", pattern="^[A-Z]{2}$")
    # The deployment's trained classifier versions (`make train` writes them, the router loads
    # the promoted one at start); unset: the model shipped in router/classifier/models. Only
    # the training job may write here (router/classifier/model.py: arrays, never pickles).
    classifier_dir: Path | None = None
    # false: the rules alone classify, as before the trained model.
    classifier_enabled: bool = True
