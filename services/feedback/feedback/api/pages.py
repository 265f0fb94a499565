"""The survey's HTML pages: small, accessible (lang attribute, labels, fieldsets, keyboard and
screen-reader friendly) and working without JavaScript — a plain form posting back to the link —
and the security headers every response on the survey link carries."""

from __future__ import annotations

import base64
import hashlib
from html import escape
from typing import Any, Final

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feedback.domain.texts import SurveyTexts

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5}fieldset{border:1px solid #888;margin:1rem 0;padding:.5rem 1rem}"
    "legend{font-weight:600}.scale{display:flex;flex-wrap:wrap;gap:.25rem .75rem}"
    "label{cursor:pointer}button{font-size:1rem;padding:.5rem 1.5rem}"
    ".hint{font-size:.875rem;color:#444}textarea{width:100%}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

SURVEY_PATH_PREFIX: Final = "/v1/surveys/"
SECURITY_HEADERS: Final = {
    # Nothing loads but the page's own inline style (by its hash); no script at all; the form
    # posts only back to the link; no site may frame the page (clickjacking an answer).
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    # The link's token is the customer's credential: never sent on as a Referer.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class SurveyPageHeaders:
    """ASGI middleware: adds SECURITY_HEADERS to every response under the survey link (pages,
    JSON and problems alike)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(SURVEY_PATH_PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _page(texts: SurveyTexts, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="{escape(texts.lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(texts.title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def _scale(name: str, legend: str, low: int, high: int, lo: str, hi: str, current: Any) -> str:
    options = "".join(
        f'<label><input type="radio" name="{name}" value="{v}"'
        f"{' checked' if current == v else ''}> {v}</label>"
        for v in range(low, high + 1)
    )
    hint_id = f"{name}-hint"
    return (
        f'<fieldset aria-describedby="{hint_id}"><legend>{escape(legend)}</legend>'
        f'<p class="hint" id="{hint_id}">{low} = {escape(lo)}, {high} = {escape(hi)}</p>'
        f'<div class="scale">{options}</div></fieldset>'
    )


def survey_page(
    texts: SurveyTexts, answer: dict[str, Any] | None, *, reminder: bool = False
) -> str:
    answer = answer or {}
    solved = answer.get("solved_first_contact")
    intro = texts.reminder_intro if reminder else texts.intro
    form = (
        f"<h1>{escape(texts.title)}</h1><p>{escape(intro)}</p>"
        '<form method="post">'
        + _scale("csat", texts.csat, 1, 5, texts.csat_low, texts.csat_high, answer.get("csat"))
        + _scale("nps", texts.nps, 0, 10, texts.nps_low, texts.nps_high, answer.get("nps"))
        + f"<fieldset><legend>{escape(texts.solved)}</legend>"
        f'<label><input type="radio" name="solved_first_contact" value="yes"'
        f"{' checked' if solved is True else ''}> {escape(texts.yes)}</label> "
        f'<label><input type="radio" name="solved_first_contact" value="no"'
        f"{' checked' if solved is False else ''}> {escape(texts.no)}</label></fieldset>"
        f'<p><label for="comment">{escape(texts.comment)}</label><br>'
        f'<textarea id="comment" name="comment" rows="4" maxlength="4000">'
        f"{escape(answer.get('comment') or '')}</textarea></p>"
        f'<p><button type="submit">{escape(texts.submit)}</button></p></form>'
    )
    return _page(texts, form)


def thanks_page(texts: SurveyTexts, updated: bool) -> str:
    message = texts.updated if updated else texts.thanks
    return _page(texts, f'<h1>{escape(texts.title)}</h1><p role="status">{escape(message)}</p>')
