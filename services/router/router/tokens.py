"""Issue a user token for the contact-center UI's APIs (for development, tests and scripts;
in production the identity provider that signs users in issues them with the same secret).

    python -m router.tokens issue --sub amy --role agent [--ttl-hours 8]

The secret is ROUTER_AUTH_SECRET (the same one the router checks with).
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

from ccshared.auth import ROLES, issue_token
from router.settings import RouterSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m router.tokens")
    commands = parser.add_subparsers(dest="command", required=True)
    issue = commands.add_parser("issue", help="print a signed token")
    issue.add_argument("--sub", required=True, help="the agent id, or the supervisor's user id")
    issue.add_argument("--role", required=True, choices=ROLES)
    issue.add_argument("--ttl-hours", type=float, default=8.0)
    args = parser.parse_args(argv)
    settings = RouterSettings()
    try:
        token = issue_token(
            settings.auth_secret.get_secret_value().encode(),
            args.sub,
            args.role,
            ttl=timedelta(hours=args.ttl_hours),
        )
    except ValueError as exc:
        parser.error(str(exc))
    sys.stdout.write(token + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
