"""`python -m console.users`: the console's users, from the command line.

    python -m console.users create NAME --role agent|supervisor [--agent AGENT_ID]
        [--display-name "…"] [--language en|zh] [--password-stdin]
    python -m console.users set-password NAME [--password-stdin]
    python -m console.users list

Without --password-stdin a random password is made and printed once (only its argon2id hash
is stored). An agent user works as the router agent of the same name unless --agent names
another. Settings (the database) come from CONSOLE_* like the service's."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys

from sqlalchemy.ext.asyncio import AsyncEngine

from ccshared.db import make_engine
from ccshared.migrate import apply_migrations, service_migrations
from console.db import users as db
from console.domain.users import USER_ID, WeakPassword, check_new_password, hash_password
from console.settings import ConsoleSettings


class UserError(Exception):
    """What the command prints and exits 2 for."""


def new_password() -> str:
    # 4 groups of 5 from an alphabet without look-alikes: 20 characters, about 100 bits.
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))


async def create_user(
    engine: AsyncEngine,
    user_id: str,
    role: str,
    *,
    password: str,
    agent_id: str | None = None,
    display_name: str | None = None,
    language: str | None = None,
) -> None:
    if not USER_ID.fullmatch(user_id):
        raise UserError("a user name is 1-63 of a-z 0-9 . _ - (starting with a letter or digit)")
    if role not in ("agent", "supervisor"):
        raise UserError("role must be agent or supervisor")
    try:
        check_new_password(password, user_id)
    except WeakPassword as exc:
        raise UserError(f"password {exc}") from None
    async with engine.begin() as conn:
        created = await db.create_user(
            conn,
            user_id=user_id,
            display_name=display_name or user_id,
            role=role,
            agent_id=(agent_id or user_id) if role == "agent" else None,
            password_hash=hash_password(password),
            language=language,
        )
    if not created:
        raise UserError(f"{user_id} exists already (or its agent has a user)")


async def _main(args: argparse.Namespace) -> int:
    settings = ConsoleSettings()
    engine = make_engine(settings.database_url.get_secret_value(), app_name="console-users")
    try:
        await apply_migrations(engine, settings, service_migrations(settings, "console"))
        if args.command == "list":
            async with engine.begin() as conn:
                for user in await db.list_users(conn):
                    agent = f" (agent {user.agent_id})" if user.agent_id else ""
                    print(f"{user.id}\t{user.role}{agent}\t{user.display_name}")
            return 0
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else new_password()
        if args.command == "create":
            await create_user(
                engine,
                args.name,
                args.role,
                password=password,
                agent_id=args.agent,
                display_name=args.display_name,
                language=args.language,
            )
        else:
            try:
                check_new_password(password, args.name)
            except WeakPassword as exc:
                raise UserError(f"password {exc}") from None
            async with engine.begin() as conn:
                if not await db.set_password(conn, args.name, hash_password(password)):
                    raise UserError(f"no user {args.name}")
        if not args.password_stdin:
            print(f"user: {args.name}\npassword: {password}")
        else:
            print(f"user: {args.name}")
        return 0
    except UserError as exc:
        print(f"console.users: {exc}", file=sys.stderr)
        return 2
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console.users")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a user")
    create.add_argument("name")
    create.add_argument("--role", required=True, choices=["agent", "supervisor"])
    create.add_argument("--agent", help="the router agent an agent user works as (default: NAME)")
    create.add_argument("--display-name")
    create.add_argument("--language", choices=["en", "zh"])
    create.add_argument("--password-stdin", action="store_true")
    reset = sub.add_parser("set-password", help="set a user's password (signs them out)")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true")
    sub.add_parser("list", help="list the users")
    return asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
