"""Intake's command-line tools: create, list and revoke integration API keys, and set their
phone region.

    python -m intake.cli keys create --name telephony --channels phone [--rate 50 --burst 100]
                                     [--region US]
    python -m intake.cli keys list
    python -m intake.cli keys region <prefix> US        # or `-` for the service's default
    python -m intake.cli keys revoke <prefix>
    python -m intake.cli keys outbound <prefix> [--url URL] [--mail-from ADDR] [--rotate-secret]

Reads INTAKE_DATABASE_URL like the service. The key is printed once, on creation; only a hash of
it is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import get_args

import asyncpg

from ccshared.db import asyncpg_dsn, load_migrations, make_engine, migrate, shared_migrations
from ccshared.webhook_transport import check_webhook_url
from ccshared.webhooks import AddressRefused
from intake.db.api_keys import create_key, key_by_prefix, list_keys, revoke_key, set_phone_region
from intake.db.outbound import outbound_of, register_outbound
from intake.domain.contact_models import Channel
from intake.domain.normalize import UnknownPhoneRegion, phone_region_code
from intake.domain.outbound import new_signing_secret
from intake.settings import IntakeSettings

CHANNELS = get_args(Channel)


def _channels(value: str) -> list[str]:
    channels = [c.strip() for c in value.split(",") if c.strip()]
    unknown = sorted(set(channels) - set(CHANNELS))
    if not channels or unknown:
        raise argparse.ArgumentTypeError(
            f"channels must be a comma-separated subset of {', '.join(CHANNELS)}"
            + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
    return channels


def _region(value: str) -> str:
    try:
        return phone_region_code(value)
    except UnknownPhoneRegion as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m intake.cli", description="Intake's tools")
    tools = parser.add_subparsers(dest="tool", required=True)
    keys = tools.add_parser("keys", help="integration API keys")
    sub = keys.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True, help="the integration, e.g. 'telephony-eu'")
    create.add_argument("--channels", required=True, type=_channels, help="e.g. phone,email")
    create.add_argument("--rate", type=float, default=200.0, help="requests per second")
    create.add_argument("--burst", type=int, default=400, help="requests allowed at once")
    create.add_argument(
        "--region",
        type=_region,
        default=None,
        help="ISO 3166 alpha-2 region of this integration's phone numbers written without a "
        "country code, e.g. US (default: INTAKE_DEFAULT_PHONE_REGION)",
    )
    sub.add_parser("list", help="list keys (never their secrets)")
    region = sub.add_parser(
        "region", help="set the region of a key's national phone numbers ('-': the default)"
    )
    region.add_argument("prefix")
    region.add_argument("region", type=lambda v: None if v == "-" else _region(v))
    revoke = sub.add_parser("revoke", help="revoke a key by its prefix")
    revoke.add_argument("prefix")
    outbound = sub.add_parser(
        "outbound",
        help="where the key's integration takes outbound messages (prints a new signing "
        "secret once); without options, shows the registration",
    )
    outbound.add_argument("prefix")
    outbound.add_argument("--url", help="http(s) URL for chat, social and phone messages")
    outbound.add_argument("--mail-from", help="From of e-mail replies, e.g. 'Support <s@x>'")
    outbound.add_argument("--rotate-secret", action="store_true", help="issue a new secret")
    return parser


async def _main(args: argparse.Namespace) -> int:
    url = IntakeSettings().database_url.get_secret_value()
    engine = make_engine(url, pool_size=1)
    try:
        await migrate(engine, shared_migrations() + load_migrations("intake", "intake"))
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        if args.command == "create":
            if args.rate <= 0 or args.burst < 1:
                print("--rate must be > 0 and --burst >= 1", file=sys.stderr)
                return 2
            key, plaintext = await create_key(
                conn,
                name=args.name,
                channels=args.channels,
                rate_per_s=args.rate,
                burst=args.burst,
                phone_region=args.region,
            )
            print(plaintext)
            print(
                f"created key {key.prefix} for {key.name!r}: channels "
                f"{','.join(sorted(key.channels))}, {key.rate_per_s:g}/s (burst {key.burst}), "
                f"phone region {key.phone_region or 'the default'}. "
                "Store it now: it is not shown again.",
                file=sys.stderr,
            )
        elif args.command == "list":
            for key in await list_keys(conn):
                state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
                print(
                    f"{key.prefix}  {key.name:<24} {','.join(sorted(key.channels)):<24} "
                    f"{key.rate_per_s:g}/s  {key.phone_region or '--'}  {state}"
                )
        elif args.command == "region":
            if not await set_phone_region(conn, args.prefix, args.region):
                print(f"no key with prefix {args.prefix}", file=sys.stderr)
                return 1
            print(
                f"key {args.prefix}: phone region {args.region or 'the default'} "
                "(in effect within INTAKE_API_KEY_CACHE_S)",
                file=sys.stderr,
            )
        elif args.command == "outbound":
            return await _outbound(conn, args)
        elif args.command == "revoke":
            if not await revoke_key(conn, args.prefix):
                print(f"no active key with prefix {args.prefix}", file=sys.stderr)
                return 1
            print(f"revoked {args.prefix}", file=sys.stderr)
    finally:
        await conn.close()
    return 0


async def _outbound(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    settings = IntakeSettings()
    key = await key_by_prefix(conn, args.prefix)
    if key is None:
        print(f"no key with prefix {args.prefix}", file=sys.stderr)
        return 1
    if args.url:
        try:
            await check_webhook_url(args.url, settings.outbound_address_rules())
        except AddressRefused as exc:
            print(
                f"{exc} (INTAKE_OUTBOUND_ALLOW_HOSTS allows hosts in development)", file=sys.stderr
            )
            return 2
    current = await outbound_of(conn, key.integration_id)
    changing = args.url or args.mail_from or args.rotate_secret
    issued = None
    if changing and (args.rotate_secret or current is None or current.signing_secret is None):
        issued = new_signing_secret()
    if changing:
        await register_outbound(
            conn, key.integration_id, url=args.url, signing_secret=issued, mail_from=args.mail_from
        )
    stored = await outbound_of(conn, key.integration_id)
    if stored is None:
        print(f"integration {key.name!r} has registered nothing", file=sys.stderr)
        return 1
    if issued:
        print(issued)
    print(
        f"integration {key.name!r}: url {stored.url or '--'}, mail from {stored.mail_from or '--'}"
        + (". Store the signing secret now: it is not shown again." if issued else ""),
        file=sys.stderr,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(_main(_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
