import logging
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ccshared.logging import (
    REDACT_MAX_CHARS,
    JsonFormatter,
    RedactingFilter,
    configure_logging,
    correlation_id,
    redact,
)
from tests.helpers import best_seconds


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
    assert RedactingFilter().filter(record)  # as configure_logging's handler does first
    token = correlation_id.set("req-77")
    try:
        entry = orjson.loads(formatter.format(record))
    finally:
        correlation_id.reset(token)
    assert entry["correlation_id"] == "req-77"
    assert entry["service"] == "intake"
    assert "pw1" not in entry["msg"]
    assert "pw2" not in entry["dsn"]


# --- Every secret shape through the handlers' filter: message, arguments, exception text -----


def _secrets() -> dict[str, tuple[str, str]]:
    """Each kind of secret as this system really makes it: (the text, the part that is secret)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ccshared.auth import issue_token as issue_user_token
    from feedback.domain.tokens import issue_token as issue_survey_token
    from intake.domain.api_keys import issue_key

    key = Ed25519PrivateKey.generate()
    api_key = issue_key().plaintext
    jwt = issue_user_token(key, "amy", "supervisor", ttl=timedelta(hours=1))
    survey = issue_survey_token(uuid.uuid4(), datetime.now(UTC) + timedelta(days=14), b"k" * 32)
    webhook = "whsec_" + secrets.token_urlsafe(32)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "intake API key": (api_key, api_key.rsplit("_", 1)[1]),
        "user token (JWT)": (jwt, jwt.split(".", 1)[1]),
        "survey token": (survey, survey),
        "webhook secret": (webhook, webhook[6:]),
        "PEM private key": (pem, pem.splitlines()[1]),
        "bearer of another shape": ("Bearer opaque-4f9a8b7c6d5e", "opaque-4f9a8b7c6d5e"),
    }


SECRETS = _secrets()


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, list[str]]]:
    """A logger whose handler carries the filter, as configure_logging sets its own up."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger(f"test.redaction.{uuid.uuid4().hex}")
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, lines
    logger.removeHandler(handler)


@pytest.mark.parametrize("where", ["message", "args", "exception"])
@pytest.mark.parametrize("shape", list(SECRETS))
def test_each_secret_shape_is_redacted_from_log_lines(
    capture: tuple[logging.Logger, list[str]], shape: str, where: str
) -> None:
    log, lines = capture
    text, secret_part = SECRETS[shape]
    if where == "message":
        log.warning(f"the caller sent {text} in a field")
    elif where == "args":
        log.warning("the caller sent %s in a field", text)
    else:
        try:
            raise ValueError(f"cannot use {text}")
        except ValueError:
            log.exception("handling failed")
    assert len(lines) == 1
    assert secret_part not in lines[0]
    assert "***" in lines[0]


def test_the_api_keys_prefix_stays_to_tell_which_key_it_was() -> None:
    key = "cck_0123456789ab_" + "kQ3-zT_8pX2vL9mN4bR7cY1wE6aH0sD5fG2jK8uI3oP"
    assert redact(f"key {key} refused") == "key cck_0123456789ab_*** refused"


def test_customer_text_quoted_by_pydantic_or_asyncpg_is_redacted() -> None:
    pydantic_error = (
        "1 validation error for Contact\nbody\n  String should have at most 10 characters "
        "[type=string_too_long, input_value='my card is 4111 1111 1111 1111', input_type=str]"
    )
    asyncpg_error = (
        "invalid input for query argument $2: 'my card is 4111 1111 1...' (expected int)"
    )
    for line in (pydantic_error, asyncpg_error):
        assert "4111" not in redact(line)


def test_configure_logging_puts_the_filter_on_its_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    api_key, secret = SECRETS["intake API key"]
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("intake", "INFO", json=True)
        logging.getLogger("intake.api").warning("refused %s", api_key)
        entry = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert secret not in entry["msg"]
    assert entry["msg"].startswith("refused cck_")


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("FEEDBACK_TOKEN_SECRET=Zm9vYmFyYmF6cXV4eHl6", "Zm9vYmFyYmF6cXV4eHl6"),
        ("client_secret=s3cr3tv4lue&grant_type=client_credentials", "s3cr3tv4lue"),
        ("x_api_key=k3yv4lue", "k3yv4lue"),
        ("GET /cb?access_token=t0kenv4lue HTTP/1.1", "t0kenv4lue"),
        ("secret_key: 'k3y with spaces'", "k3y with spaces"),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ('Authorization: Digest username="bob", response="6629fae49393a053"', "6629fae49393a053"),
        ("{'authorization': 'Basic dXNlcjpwYXNz', 'accept': '*/*'}", "dXNlcjpwYXNz"),
        ('{"secret": "my webhook secret"}', "webhook"),
        ("{'password': 'correct horse battery'}", "horse"),
        ('{"password": "pa\\"ss word", "n": 1}', "ss word"),
        ("Authorization: 'Basic dXNl\\'cjpwYXNz'", "cjpwYXNz"),
        ("connect to postgresql://cc:p@ss@db:5432/intake failed", "ss@db"),
        ("connect to postgresql://cc:p@ss@db:5432/intake failed", "p@"),
        ("redis://:pw1234@cache:6379/0", "pw1234"),
        (
            "IntegrityError: new row violates check constraint\n"
            "DETAIL:  Failing row contains (victim@example.com, Jane Doe).",
            "victim@example.com",
        ),
        (
            "duplicate key value violates unique constraint\n"
            "DETAIL:  Key (email)=(victim@example.com) already exists.",
            "victim@example.com",
        ),
        ("detail='Key (email)=(victim@example.com) already exists.'", "victim@example.com"),
    ],
)
def test_prefixed_labels_quoted_values_auth_schemes_userinfo_and_row_details_are_redacted(
    line: str, secret: str
) -> None:
    assert secret not in redact(line)
    assert "***" in redact(line)


def test_redaction_keeps_what_tells_the_lines_apart() -> None:
    assert redact("postgresql://cc:p@ss@db:5432/intake") == "postgresql://cc:***@db:5432/intake"
    assert redact("Authorization: Basic dXNlcjpwYXNz") == "Authorization: ***"
    assert redact('{"secret": "a b", "n": 1}') == '{"secret": "***", "n": 1}'
    assert redact("DETAIL:  Key (email)=(v@example.com) already exists.") == "DETAIL: ***"
    for ordinary in ("token_count=5 secrets_rotated=2", "the secret santa list", "GET /health"):
        assert redact(ordinary) == ordinary


def _seconds(text: str) -> float:
    # not cut: the patterns themselves must be linear
    return max(best_seconds(lambda: redact(text, limit=len(text))), 0.0005)


@pytest.mark.parametrize(
    "unit",
    [
        "://a:",
        "-eyJa",
        "input_value=",
        "password=",
        "Key (",
        "invalid input for query argument $1 ",
    ],
)
def test_redaction_cost_grows_linearly_with_hostile_repetition(unit: str) -> None:
    """Repeating a pattern's prefix without its end made the scan quadratic (12 s for
    '://a:' * 40,000). Four times the text must cost about four times the time, not sixteen;
    10 MB costs what the REDACT_MAX_CHARS it is cut to cost. Ratios within one run: machines
    differ by up to 4x from day to day."""
    small, large = unit * (20_000 // len(unit)), unit * (80_000 // len(unit))
    assert _seconds(large) < 8 * _seconds(small)
    cut_to = unit * (REDACT_MAX_CHARS // len(unit))
    huge = unit * (10_000_000 // len(unit))
    assert best_seconds(lambda: redact(huge)) < 3 * _seconds(cut_to) + 0.005


def test_redact_cuts_a_huge_text_and_never_leaves_half_a_secret_at_the_cut() -> None:
    head = ("z " * REDACT_MAX_CHARS)[: REDACT_MAX_CHARS - len("postgresql://cc:hunt")]
    out = redact(head + "postgresql://cc:hunter2hunter2@db/x" + " y" * 10_000)
    assert len(out) < REDACT_MAX_CHARS + 100
    assert "hunt" not in out
    assert out.endswith("characters cut]")
