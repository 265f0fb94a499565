"""Raw e-mails built to make a parser slow or crash: each took seconds to minutes, or raised
RecursionError (a 500), before intake bounded what it parses. Shared by the unit tests of the
parser and the integration test of the running service."""

from __future__ import annotations

HEAD = (
    "Message-ID: <hostile@mail.example>\r\nFrom: Li Wei <li.wei@example.cn>\r\n"
    "Date: Wed, 25 Nov 2026 10:00:00 +0800\r\nSubject: hi\r\n"
)


def _mail(headers: str, body: str = "hello\r\n") -> bytes:
    return (HEAD + headers + "\r\n" + body).encode()


def _nested_multiparts(depth: int, filler_lines: int = 0) -> bytes:
    opening = "".join(
        f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n" for i in range(depth)
    )
    closing = "".join(f"--b{i}--\r\n" for i in reversed(range(depth)))
    inner = f"--b{depth}\r\nContent-Type: text/plain\r\n\r\nhi{chr(10) * filler_lines}\r\n"
    return _mail(
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b0\r\n",
        opening + inner + f"--b{depth}--\r\n" + closing,
    )


def _parts(count: int) -> bytes:
    parts = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n" for i in range(count))
    return _mail(
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n", parts + "--b--\r\n"
    )


def _html(html: str) -> bytes:
    return _mail("MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n", html)


# name -> (raw message, the field the refusal names)
HOSTILE: dict[str, tuple[bytes, str]] = {
    "105 KB To header": (
        _mail("To: " + ", ".join(f"u{i}@example.com" for i in range(6_000)) + "\r\n"),
        "body.header",
    ),
    "105 KB To header of commas": (_mail("To: " + "," * 105_000 + "\r\n"), "body.header"),
    "400 KB of headers": (
        _mail("".join(f"X-Filler-{i}: {'v' * 30}\r\n" for i in range(10_000))),
        "body.header",
    ),
    "one 30 KB Subject of 3,000 encoded words": (
        _mail("Subject2: " + " ".join(["=?utf-8?q?a?="] * 3_000) + "\r\n"),
        "body.header",
    ),
    "20,000 encoded words": (
        _mail("Subject2: " + " ".join(["=?utf-8?b?5L2g5aW9?="] * 20_000) + "\r\n"),
        "body.header",
    ),
    "20,000 MIME parts": (_parts(20_000), "body.mime"),
    "300 MIME parts": (_parts(300), "body.mime"),
    "1,000 nested multiparts": (_nested_multiparts(1_000), "body.mime"),
    "45 nested multiparts around 100,000 lines": (
        _nested_multiparts(45, filler_lines=99_000),
        "body.mime",
    ),
    "5,000 nested comments in From": (
        HEAD.replace(
            "From: Li Wei <li.wei@example.cn>", "From: " + "(" * 5_000 + ")" * 5_000
        ).encode()
        + b"\r\nhi\r\n",
        "body.header.From",
    ),
    "5,000 nested comments in To": (
        _mail("To: a@example.com " + "(" * 5_000 + ")" * 5_000 + "\r\n"),
        "body.header.To",
    ),
    "100,000 nested divs": (_html("<div>" * 100_000), "body.email.html"),
    "500,000 lines": (_mail("", "\n" * 500_000), "body"),
}
