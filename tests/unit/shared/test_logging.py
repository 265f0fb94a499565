import logging

import orjson
import pytest

from ccshared.logging import JsonFormatter, correlation_id, redact


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("connect to postgresql+asyncpg://cc:s3cr3t@db:5432/intake failed", "s3cr3t"),
        ("password=hunter2 user=cc", "hunter2"),
        ('{"api_key": "ck_live_abcdef"}', "ck_live_abcdef"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi.payload.sig"),
        ("token=abc123&x=1", "abc123"),
    ],
)
def test_secrets_are_redacted(line: str, secret: str) -> None:
    assert secret not in redact(line)
    assert "***" in redact(line)


def test_ordinary_text_is_left_alone() -> None:
    line = "ticket 42 resolved by agent a-7: 客户满意"
    assert redact(line) == line


def test_json_log_carries_correlation_id_and_redacts_extras() -> None:
    formatter = JsonFormatter("intake")
    record = logging.makeLogRecord(
        {
            "msg": "posting with %s",
            "args": ("password=pw1",),
            "levelno": 20,
            "levelname": "INFO",
            "dsn": "postgresql://u:pw2@h/db",
        }
    )
    token = correlation_id.set("req-77")
    try:
        entry = orjson.loads(formatter.format(record))
    finally:
        correlation_id.reset(token)
    assert entry["correlation_id"] == "req-77"
    assert entry["service"] == "intake"
    assert "pw1" not in entry["msg"]
    assert "pw2" not in entry["dsn"]
