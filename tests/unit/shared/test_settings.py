import base64
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError

from ccshared.settings import ServiceSettings, UserTokenSettings


def _field_of(exc: ValidationError) -> list[str]:
    return [".".join(str(p) for p in e["loc"]) for e in exc.errors()]


def test_defaults_point_at_the_local_stack() -> None:
    settings = ServiceSettings(service_name="x")
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert settings.database_url.get_secret_value().startswith("postgresql+asyncpg://")


def test_service_prefix_reads_its_own_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from router.settings import RouterSettings

    monkeypatch.setenv("ROUTER_KAFKA_BOOTSTRAP", "k1:9092, k2:9093")
    monkeypatch.setenv("INTAKE_KAFKA_BOOTSTRAP", "elsewhere:1")
    settings = RouterSettings()
    assert settings.kafka_bootstrap == "k1:9092,k2:9093"
    assert settings.database_url.get_secret_value().endswith("/router")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kafka_bootstrap", "no-port"),
        ("kafka_bootstrap", "host:99999"),
        ("kafka_bootstrap", " , "),
        ("database_url", "mysql://u:p@h/db"),
        ("database_url", "postgresql://u:p@h/db"),
        ("database_url", "postgresql+asyncpg://u:p@/db"),  # no host and no socket directory
        ("database_pool_size", 0),
        ("outbox_poll_interval_s", -1),
        ("log_level", "LOUD"),
    ],
)
def test_bad_setting_is_rejected_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        ServiceSettings(service_name="x", **{field: value})
    assert field in _field_of(info.value)


def test_database_password_is_not_shown_in_repr() -> None:
    settings = ServiceSettings(
        service_name="x", database_url="postgresql+asyncpg://u:hunter2@h:5432/db"
    )
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())


def test_a_unix_socket_url_is_accepted_and_reaches_asyncpg_as_such() -> None:
    from ccshared.db import asyncpg_dsn

    url = "postgresql+asyncpg://u:p@/intake?host=/run/postgresql&port=5432"
    settings = ServiceSettings(service_name="x", database_url=url)  # type: ignore[arg-type]
    dsn = asyncpg_dsn(settings.database_url.get_secret_value())
    assert dsn.startswith("postgresql://u:p@/intake?")
    assert "host=%2Frun%2Fpostgresql" in dsn


# --- Secrets and keys: the shipped development ones only with CC_DEVELOPMENT=1 ---------------

ROOT = Path(__file__).resolve().parents[3]
DEV_PUBLIC_KEY_FILE = ROOT / "deploy/local/dev-token-key.DEV-ONLY.pub.pem"


def _user_token_settings() -> list[type[UserTokenSettings]]:
    from feedback.settings import FeedbackSettings
    from router.settings import RouterSettings
    from sla.settings import SLASettings

    return [RouterSettings, SLASettings, FeedbackSettings]


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    """CC_DEVELOPMENT unset (the test suite sets it for everything else)."""
    monkeypatch.delenv("CC_DEVELOPMENT")


def _real_public_key_pem() -> str:
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.mark.parametrize("index", range(3), ids=["router", "sla", "feedback"])
@pytest.mark.usefixtures("production")
def test_a_service_with_the_development_public_key_refuses_to_start_outside_development(
    index: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = _user_token_settings()[index]
    prefix = cls.model_config["env_prefix"]
    monkeypatch.setenv(f"{prefix}TOKEN_SECRET", "k" + secrets.token_urlsafe(40))
    for dev_key in (None, str(DEV_PUBLIC_KEY_FILE), DEV_PUBLIC_KEY_FILE.read_text()):
        if dev_key is not None:
            monkeypatch.setenv(f"{prefix}AUTH_PUBLIC_KEY", dev_key)
        with pytest.raises(ValidationError) as info:
            cls()
        assert "auth_public_key" in _field_of(info.value)
        assert f"{prefix}AUTH_PUBLIC_KEY is the development key" in str(info.value)
    monkeypatch.setenv(f"{prefix}AUTH_PUBLIC_KEY", _real_public_key_pem())
    assert not cls().development


def test_the_development_switch_is_one_unprefixed_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from router.settings import RouterSettings

    monkeypatch.delenv("CC_DEVELOPMENT")
    monkeypatch.setenv("ROUTER_DEVELOPMENT", "1")  # not a thing: no per-service switch
    with pytest.raises(ValidationError):
        RouterSettings()
    monkeypatch.setenv("CC_DEVELOPMENT", "1")
    assert RouterSettings().development


@pytest.mark.parametrize(
    "value",
    [
        "not-a-key-and-no-such-file",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
        # An RSA or EC key is not what tokens are signed with.
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    ],
    ids=["placeholder", "garbage PEM", "EC key"],
)
def test_a_public_key_that_is_not_ed25519_is_refused_even_in_development(value: str) -> None:
    from router.settings import RouterSettings

    with pytest.raises(ValidationError) as info:
        RouterSettings(auth_public_key=value)
    assert _field_of(info.value) == ["auth_public_key"]


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize(
    "secret",
    [
        None,  # the shipped default
        "local-dev-survey-token-secret-change-me",
        "change-me-to-32-or-more-random-characters-too",
        "short-but-random-9f8e7d",
        "a" * 64,
        "0123456789" * 4,
    ],
)
def test_feedback_with_a_default_placeholder_or_short_survey_secret_refuses_to_start(
    secret: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feedback.settings import FeedbackSettings

    monkeypatch.setenv("FEEDBACK_AUTH_PUBLIC_KEY", _real_public_key_pem())
    if secret is not None:
        monkeypatch.setenv("FEEDBACK_TOKEN_SECRET", secret)
    with pytest.raises(ValidationError) as info:
        FeedbackSettings()
    assert _field_of(info.value) == ["token_secret"]
    assert "FEEDBACK_TOKEN_SECRET" in str(info.value)
    monkeypatch.setenv("FEEDBACK_TOKEN_SECRET", secrets.token_urlsafe(36))
    assert FeedbackSettings().token_secret


def test_development_accepts_the_shipped_defaults() -> None:
    for cls in _user_token_settings():
        assert cls().development


@pytest.mark.usefixtures("production")
def test_the_kubernetes_example_secret_ships_nothing_that_passes() -> None:
    from feedback.settings import FeedbackSettings

    docs = yaml.safe_load_all((ROOT / "deploy/k8s/base/secret.example.yaml").read_text())
    [values] = [d["stringData"] for d in docs if d["metadata"]["name"] == "contactcenter"]
    with pytest.raises(ValidationError) as info:
        FeedbackSettings(
            auth_public_key=values["auth-public-key"], token_secret=values["survey-token-secret"]
        )
    assert sorted(_field_of(info.value)) == ["auth_public_key", "token_secret"]


@pytest.mark.usefixtures("production")
def test_the_router_process_exits_at_start_naming_the_setting() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CC_DEVELOPMENT"}
    env["ROUTER_PORT"] = "1"  # never reached
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--factory", "router.app:create_app", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ROUTER_AUTH_PUBLIC_KEY is the development key" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "secret",
    [
        "abcdefghijklmnopqrstuvwxyz012345",
        "0123456789abcdef0123456789abcdef",
        "survey-token-key-for-acme-production",
        "0123456789abcdef" * 4,  # 32 bytes as hex, but one stretch over and over
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "SurveyTokenKeyForAcmeProductionEnvironmentTwentySix",
        "Zm9vYmFyYmF6cXV4",  # random-looking, but 12 bytes
        "ä" * 40 + secrets.token_urlsafe(32)[:2],  # not base64, base64url or hex
    ],
)
def test_a_guessable_secret_is_refused_outside_development(secret: str) -> None:
    from ccshared.settings import require_random_secret

    with pytest.raises(ValueError, match="token_urlsafe"):
        require_random_secret(secret, "FEEDBACK_TOKEN_SECRET", development=False)
    require_random_secret(secret, "FEEDBACK_TOKEN_SECRET", development=True)


def test_secrets_made_as_the_docs_say_are_accepted() -> None:
    from ccshared.settings import require_random_secret

    for _ in range(200):
        for secret in (
            secrets.token_urlsafe(32),
            secrets.token_hex(32),
            base64.b64encode(secrets.token_bytes(48)).decode(),  # openssl rand -base64 48
        ):
            require_random_secret(secret, "FEEDBACK_TOKEN_SECRET", development=False)


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize(
    "password",
    [
        *("change-me", "changeme", "CHANGE_ME", "password", "placeholder", "...", "secret"),
        *("xxx", "XXXXX"),
    ],
)
def test_a_placeholder_database_password_is_refused_outside_development(
    password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql+asyncpg://intake:{password}@postgres:5432/intake"
    with pytest.raises(ValidationError) as info:
        ServiceSettings(service_name="intake", database_url=url)
    assert _field_of(info.value) == ["database_url"]
    monkeypatch.setenv("CC_DEVELOPMENT", "1")
    assert ServiceSettings(service_name="intake", database_url=url).development


@pytest.mark.usefixtures("production")
def test_a_real_database_password_and_the_local_stacks_pass() -> None:
    for url in (
        f"postgresql+asyncpg://intake:{secrets.token_urlsafe(24)}@postgres:5432/intake",
        "postgresql+asyncpg://contactcenter:contactcenter@127.0.0.1:55432/intake",
        "postgresql+asyncpg://intake@/intake?host=/run/postgresql",
        # Random passwords hold xXx about once in 300 draws (the deploy test met one in CI).
        "postgresql+asyncpg://intake:Qm4xXx9v_T2kLp0sWc7bRz1N@postgres:5432/intake",
    ):
        assert ServiceSettings(service_name="intake", database_url=url).database_url
