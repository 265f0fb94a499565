"""`python -m router.tokens` (make token): signs with the issuer's private key only."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccshared.auth import DEV_PUBLIC_KEY_PEM, InvalidCredentials, load_public_key, read_token
from router.tokens import main


def _issue(capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["issue", "--sub", "amy", "--role", "agent", *extra]) == 0
    return capsys.readouterr().out.strip()


def test_development_tokens_are_signed_with_the_development_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = _issue(capsys)
    dev_public = load_public_key(DEV_PUBLIC_KEY_PEM)
    assert read_token(dev_public, token, issuer="contact-center").subject == "amy"


def test_without_a_private_key_outside_development_nothing_is_signed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CC_DEVELOPMENT")
    with pytest.raises(SystemExit):
        main(["issue", "--sub", "amy", "--role", "agent"])
    assert "CC_TOKEN_PRIVATE_KEY_FILE" in capsys.readouterr().err


def test_a_longer_ttl_than_12_hours_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["issue", "--sub", "amy", "--role", "agent", "--ttl-hours", "24"])
    assert "12 hours" in capsys.readouterr().err


def test_a_generated_key_pair_signs_tokens_its_public_half_accepts_and_the_dev_key_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", "--out", str(tmp_path / "issuer")]) == 0
    private = tmp_path / "issuer.pem"
    assert private.stat().st_mode & 0o077 == 0  # readable by its owner only
    capsys.readouterr()
    monkeypatch.delenv("CC_DEVELOPMENT")
    monkeypatch.setenv("CC_TOKEN_PRIVATE_KEY_FILE", str(private))
    monkeypatch.setenv("CC_TOKEN_ISSUER", "acme-idp")
    token = _issue(capsys, "--ttl-hours", "12")
    public = load_public_key(str(tmp_path / "issuer.pub.pem"))
    assert read_token(public, token, issuer="acme-idp").role == "agent"
    with pytest.raises(InvalidCredentials):
        read_token(public, token, issuer="contact-center")
    with pytest.raises(InvalidCredentials):
        read_token(load_public_key(DEV_PUBLIC_KEY_PEM), token, issuer="acme-idp")
