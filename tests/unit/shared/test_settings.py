import pytest
from pydantic import ValidationError

from ccshared.settings import ServiceSettings


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
