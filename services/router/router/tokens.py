"""Issue a user token for the contact-center UI's APIs (for development, tests and scripts; in
production the identity provider that signs users in issues them with its own private key).

    python -m router.tokens issue --sub amy --role agent [--ttl-hours 8]

The private key is the only thing that can mint tokens, so the services never hold it (they
hold the public half, *_AUTH_PUBLIC_KEY). It is read from CC_TOKEN_PRIVATE_KEY_FILE (a PEM
file) or CC_TOKEN_PRIVATE_KEY (PEM text); with neither set and CC_DEVELOPMENT=1, the committed
development key (deploy/local/dev-token-key.DEV-ONLY.pem), which only services in development
accept. The issuer (`iss`) is CC_TOKEN_ISSUER, "contact-center" by default: the services'
*_AUTH_ISSUER must match it.

    python -m router.tokens keygen --out /secure/dir/token-key

writes a new key pair (token-key.pem, private, mode 600; token-key.pub.pem, public).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ccshared.auth import DEFAULT_ISSUER, ROLES, issue_token, load_private_key

DEV_PRIVATE_KEY_FILE = (
    Path(__file__).resolve().parents[3] / "deploy/local/dev-token-key.DEV-ONLY.pem"
)


class NoSigningKey(Exception):
    """Neither a private key is configured nor is this a development machine."""


def _development() -> bool:
    return os.environ.get("CC_DEVELOPMENT", "").strip().lower() in ("1", "true", "yes", "on")


def signing_key_from_environment() -> Ed25519PrivateKey:
    """The token issuer's private key, from the environment (see the module's docstring)."""
    if path := os.environ.get("CC_TOKEN_PRIVATE_KEY_FILE"):
        source, value = "CC_TOKEN_PRIVATE_KEY_FILE", path
    elif pem := os.environ.get("CC_TOKEN_PRIVATE_KEY"):
        source, value = "CC_TOKEN_PRIVATE_KEY", pem
    elif _development():
        source, value = "the development key", str(DEV_PRIVATE_KEY_FILE)
    else:
        raise NoSigningKey(
            "set CC_TOKEN_PRIVATE_KEY_FILE (or CC_TOKEN_PRIVATE_KEY) to the issuer's Ed25519 "
            "private key, or CC_DEVELOPMENT=1 to sign with the development key"
        )
    try:
        return load_private_key(value)
    except ValueError as exc:
        raise NoSigningKey(f"{source} {exc}") from None


def _keygen(out: Path) -> None:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_path, public_path = out.with_suffix(".pem"), out.with_suffix(".pub.pem")
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    public_path.write_bytes(public)
    sys.stdout.write(f"private key: {private_path}\npublic key:  {public_path}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m router.tokens")
    commands = parser.add_subparsers(dest="command", required=True)
    issue = commands.add_parser("issue", help="print a signed token")
    issue.add_argument("--sub", required=True, help="the agent id, or the supervisor's user id")
    issue.add_argument("--role", required=True, choices=ROLES)
    issue.add_argument("--ttl-hours", type=float, default=8.0, help="at most 12")
    keygen = commands.add_parser("keygen", help="write a new Ed25519 key pair")
    keygen.add_argument("--out", required=True, type=Path, help="path without extension")
    args = parser.parse_args(argv)
    if args.command == "keygen":
        _keygen(args.out)
        return 0
    try:
        token = issue_token(
            signing_key_from_environment(),
            args.sub,
            args.role,
            ttl=timedelta(hours=args.ttl_hours),
            issuer=os.environ.get("CC_TOKEN_ISSUER") or DEFAULT_ISSUER,
        )
    except (ValueError, NoSigningKey) as exc:
        parser.error(str(exc))
    sys.stdout.write(token + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
