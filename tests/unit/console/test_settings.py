"""The console's settings: it signs its users' API tokens, so outside development it refuses to
start without the token issuer's private key, and refuses the committed development key (whose
private half is public); a real Ed25519 key, as PEM text or a file, is taken."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import (
    SECP256R1,
    EllipticCurvePrivateKey,
    generate_private_key,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pydantic import ValidationError

from ccshared.auth import DEV_KEY_FINGERPRINT, fingerprint
from console.settings import DEV_PRIVATE_KEY_FILE, ConsoleSettings


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    """CC_DEVELOPMENT unset (the test suite sets it for everything else)."""
    monkeypatch.delenv("CC_DEVELOPMENT", raising=False)
    monkeypatch.delenv("CONSOLE_TOKEN_PRIVATE_KEY", raising=False)


def _pem(key: Ed25519PrivateKey | EllipticCurvePrivateKey) -> str:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


def _errors_of(error: ValidationError) -> list[str]:
    return [e["msg"] for e in error.errors() if e["loc"] == ("token_private_key",)]


@pytest.mark.usefixtures("production")
def test_the_console_refuses_to_start_without_a_private_key_outside_development() -> None:
    with pytest.raises(ValidationError) as info:
        ConsoleSettings()
    [message] = _errors_of(info.value)
    assert "CONSOLE_TOKEN_PRIVATE_KEY is not set" in message


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize("given", ["path", "pem"])
def test_the_console_refuses_the_development_key_outside_development(
    given: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = str(DEV_PRIVATE_KEY_FILE) if given == "path" else DEV_PRIVATE_KEY_FILE.read_text()
    monkeypatch.setenv("CONSOLE_TOKEN_PRIVATE_KEY", value)
    with pytest.raises(ValidationError) as info:
        ConsoleSettings()
    [message] = _errors_of(info.value)
    assert "CONSOLE_TOKEN_PRIVATE_KEY is the development key" in message


@pytest.mark.usefixtures("production")
def test_the_console_accepts_a_real_key_as_pem_text_or_file_and_signs_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Ed25519PrivateKey.generate()
    file = tmp_path / "token-key.pem"
    file.write_text(_pem(key))
    for value in (_pem(key), str(file)):
        monkeypatch.setenv("CONSOLE_TOKEN_PRIVATE_KEY", value)
        settings = ConsoleSettings()
        assert not settings.development
        assert fingerprint(settings.signing_key().public_key()) == fingerprint(key.public_key())


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize("value", ["no-such-file-and-no-pem", "ec"])
def test_the_console_refuses_what_is_not_an_ed25519_private_key(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value == "ec":
        value = _pem(generate_private_key(SECP256R1()))
    monkeypatch.setenv("CONSOLE_TOKEN_PRIVATE_KEY", value)
    with pytest.raises(ValidationError) as info:
        ConsoleSettings()
    assert _errors_of(info.value)


def test_in_development_the_console_signs_with_the_development_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CC_DEVELOPMENT", "1")
    monkeypatch.delenv("CONSOLE_TOKEN_PRIVATE_KEY", raising=False)
    settings = ConsoleSettings()
    assert fingerprint(settings.signing_key().public_key()) == DEV_KEY_FINGERPRINT
    monkeypatch.setenv("CONSOLE_TOKEN_PRIVATE_KEY", str(DEV_PRIVATE_KEY_FILE))
    assert ConsoleSettings().development
