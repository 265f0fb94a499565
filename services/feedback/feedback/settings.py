"""Feedback settings, read from FEEDBACK_* environment variables."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from ccshared.events.catalog import INTAKE_CONTACTS, ROUTER_TICKETS, SLA_EVENTS
from ccshared.settings import LOCAL_PG, UserTokenSettings, env_name, require_random_secret
from feedback.domain.surveys import SurveyPolicy
from feedback.domain.webhooks import WebhookAddressRules


class FeedbackSettings(UserTokenSettings):
    model_config = SettingsConfigDict(env_prefix="FEEDBACK_", extra="ignore", frozen=True)

    service_name: str = "feedback"
    database_url: SecretStr = SecretStr(f"{LOCAL_PG}/feedback")

    # Survey links: where the survey page is served, and the key its tokens are signed with
    # (HMAC-SHA256: base64, base64url or hex of 32+ random bytes). The default is for development
    # only and is refused unless CC_DEVELOPMENT=1: with it anyone could mint a link to any survey.
    public_base_url: str = "http://127.0.0.1:8004"
    token_secret: SecretStr = SecretStr("local-dev-survey-token-secret-change-me")
    survey_link_ttl_s: float = Field(default=14 * 86_400, gt=0)

    # Scheduling and suppression.
    survey_delay_phone_s: float = Field(default=3_600, ge=0)
    survey_delay_email_s: float = Field(default=7_200, ge=0)
    survey_delay_chat_s: float = Field(default=600, ge=0)
    survey_delay_social_s: float = Field(default=1_800, ge=0)
    customer_quiet_days: float = Field(default=30, ge=0)
    reply_window_s: float = Field(default=86_400, gt=0)
    # 0 turns the reminder off.
    reminder_after_s: float = Field(default=3 * 86_400, ge=0)
    answer_edit_window_s: float = Field(default=86_400, ge=0)

    # Observed FCR: a new contact within this many days after resolution means not solved.
    observed_fcr_days: float = Field(default=7, gt=0)

    # Where the consumed events are read from (the catalog's topics; tests use private ones).
    tickets_topic: str = ROUTER_TICKETS
    sla_topic: str = SLA_EVENTS
    contacts_topic: str = INTAKE_CONTACTS

    # Background work.
    scheduler_interval_s: float = Field(default=5.0, gt=0, le=3_600)
    scheduler_batch: int = Field(default=200, ge=1, le=10_000)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_retry_base_s: float = Field(default=30.0, gt=0)
    webhook_retry_cap_s: float = Field(default=6 * 3_600, gt=0)
    webhook_concurrency: int = Field(default=16, ge=1, le=256)
    # Webhooks never go to loopback, private, link-local (metadata), CGNAT, multicast or
    # reserved addresses. Development only: these comma-separated names, addresses or CIDR
    # networks are allowed anyway (a local receiver), e.g. "127.0.0.1,localhost".
    webhook_allow_hosts: str = ""

    @field_validator("webhook_allow_hosts")
    @classmethod
    def _valid_allow_list(cls, value: str) -> str:
        WebhookAddressRules.parse(value)
        return value

    def webhook_address_rules(self) -> WebhookAddressRules:
        return WebhookAddressRules.parse(self.webhook_allow_hosts)

    @field_validator("token_secret")
    @classmethod
    def _random_token_secret(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        require_random_secret(
            value.get_secret_value(), env_name(cls, info), bool(info.data.get("development"))
        )
        return value

    def survey_policy(self) -> SurveyPolicy:
        return SurveyPolicy(
            delays={
                "phone": timedelta(seconds=self.survey_delay_phone_s),
                "email": timedelta(seconds=self.survey_delay_email_s),
                "chat": timedelta(seconds=self.survey_delay_chat_s),
                "social": timedelta(seconds=self.survey_delay_social_s),
            },
            customer_quiet_period=timedelta(days=self.customer_quiet_days),
            reply_window=timedelta(seconds=self.reply_window_s),
            link_ttl=timedelta(seconds=self.survey_link_ttl_s),
            reminder_after=(
                timedelta(seconds=self.reminder_after_s) if self.reminder_after_s else None
            ),
        )
