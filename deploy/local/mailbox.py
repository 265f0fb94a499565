"""A local SMTP server that keeps every message it receives (built on aiosmtpd), so replies the
platform sends on a development machine can be read: `make run` starts it beside the services,
`make mail` lists what arrived and shows one.

    python deploy/local/mailbox.py serve [--host 127.0.0.1] [--port 2525] [--dir .local/mail]
    python deploy/local/mailbox.py list [--dir .local/mail]
    python deploy/local/mailbox.py show N|FILE [--dir .local/mail]   # N: as numbered by list

Each message is a maildir file (`<dir>/new/<ns>.<seq>.<pid>.eml`, written under tmp/ and
renamed, so a reader never sees half a message): the bytes as received, after two headers
naming the SMTP envelope (`X-Mailbox-From`, `X-Mailbox-To`). Nothing is relayed anywhere.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = Path(os.environ.get("CC_LOCAL_DIR", ROOT / ".local")) / "mail"

# A test's hook: given the envelope, an SMTP reply refusing the message ("451 ...",
# "550 ...") or None to keep it.
Refusal = Callable[[Envelope], str | None]


class MailboxHandler:
    """aiosmtpd handler: keeps each message as a maildir file."""

    def __init__(self, directory: Path, refuse: Refusal | None = None) -> None:
        self.directory = directory
        self.refuse = refuse
        self._seq = itertools.count(1)
        for sub in ("tmp", "new", "cur"):
            (directory / sub).mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse is not None and (reply := self.refuse(envelope)) is not None:
            return reply
        data = envelope.original_content or b""
        header = (
            f"X-Mailbox-From: {envelope.mail_from}\r\n"
            f"X-Mailbox-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        name = f"{time.time_ns():020d}.{next(self._seq):08d}.{os.getpid()}.eml"
        tmp = self.directory / "tmp" / name
        tmp.write_bytes(header + data)
        tmp.rename(self.directory / "new" / name)
        return f"250 OK kept as {name}"


class Mailbox:
    """The server, started in a thread of its own (what `serve` and the tests run)."""

    def __init__(
        self,
        directory: Path = DEFAULT_DIR,
        host: str = "127.0.0.1",
        port: int = 2525,
        refuse: Refusal | None = None,
    ) -> None:
        self.directory = directory
        self.handler = MailboxHandler(directory, refuse)
        # decode_data=False keeps the bytes as sent; SMTPUTF8 lets UTF-8 addresses in.
        self.controller = Controller(
            self.handler,
            hostname=host,
            port=port,
            enable_SMTPUTF8=True,
            data_size_limit=25 * 1024 * 1024,
        )

    @property
    def address(self) -> tuple[str, int]:
        return str(self.controller.hostname), int(self.controller.port)

    def start(self) -> Mailbox:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def files(self) -> list[Path]:
        return list_messages(self.directory)

    def messages(self) -> list[email.message.EmailMessage]:
        return [read_message(path) for path in self.files()]


def list_messages(directory: Path = DEFAULT_DIR) -> list[Path]:
    """The kept messages, oldest first."""
    found = [p for sub in ("new", "cur") for p in (directory / sub).glob("*.eml")]
    return sorted(found, key=lambda p: p.name)


def read_message(path: Path) -> email.message.EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def _serve(args: argparse.Namespace) -> int:
    mailbox = Mailbox(args.dir, args.host, args.port).start()
    host, port = mailbox.address
    print(f"mailbox: smtp://{host}:{port}, keeping messages in {args.dir}", flush=True)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    mailbox.stop()
    return 0


def _summary(path: Path) -> dict[str, Any]:
    message = read_message(path)
    return {
        "date": message.get("Date", ""),
        "to": message.get("To", ""),
        "subject": message.get("Subject", ""),
    }


def _list(args: argparse.Namespace) -> int:
    paths = list_messages(args.dir)
    if not paths:
        print(f"no messages in {args.dir}")
    for number, path in enumerate(paths, 1):
        s = _summary(path)
        print(f"{number:>4}  {s['date'][:31]:<31}  {s['to'][:30]:<30}  {s['subject']}")
    return 0


def _show(args: argparse.Namespace) -> int:
    paths = list_messages(args.dir)
    if args.message.isdigit():
        number = int(args.message)
        if not 1 <= number <= len(paths):
            print(f"no message {number} (there are {len(paths)})", file=sys.stderr)
            return 1
        path = paths[number - 1]
    else:
        path = Path(args.message)
    message = read_message(path)
    for name in ("From", "To", "Date", "Subject", "Message-ID", "In-Reply-To", "References"):
        if message.get(name):
            print(f"{name}: {message[name]}")
    print(f"({path})\n")
    body = message.get_body(preferencelist=("plain", "html"))
    print(body.get_content() if body is not None else message.get_payload())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the SMTP server")
    serve.add_argument("--host", default=os.environ.get("CC_MAIL_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("CC_MAIL_PORT", "2525")))
    sub.add_parser("list", help="list the kept messages, oldest first")
    show = sub.add_parser("show", help="show one message")
    show.add_argument("message", help="its number in `list`, or its file")
    args = parser.parse_args(argv)
    return {"serve": _serve, "list": _list, "show": _show}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
