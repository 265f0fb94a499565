"""Each service's API docs work without internet: /docs and /redoc load their JavaScript, CSS
and icon from the service itself (a packaged copy), never from a CDN, and Swagger UI's Authorize
button keeps its OAuth2 redirect page and remembers the token across reloads."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from feedback.app import create_app as create_feedback
from intake.app import create_app as create_intake
from router.app import create_app as create_router
from sla.app import create_app as create_sla

APPS = {
    "intake": create_intake,
    "router": create_router,
    "sla": create_sla,
    "feedback": create_feedback,
}
ASSET_TYPES = ("text/javascript", "application/javascript", "text/css", "image/")


class _Assets(HTMLParser):
    """Every URL a page makes the browser load: script src and link href."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.urls.append(str(values["src"]))
        if tag == "link" and values.get("href"):
            self.urls.append(str(values["href"]))


def assets_of(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


@pytest.fixture(params=list(APPS))
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = APPS[request.param]()
    # No lifespan: the docs need neither the database nor Kafka.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        yield http


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_every_asset_from_the_service_itself(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    urls = assets_of(response.text)
    assert any(u.endswith(".js") for u in urls), urls  # the page has its script
    for url in urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("", ""), f"{page} loads {url} from elsewhere"
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].startswith(ASSET_TYPES), (url, asset.headers)
        assert len(asset.content) > 0
    # Nothing else on the page points at the internet either (fonts, inline imports).
    assert not re.search(r"https?://(?!svc/)", response.text), response.text


async def test_swagger_ui_keeps_the_authorize_button_working_offline(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/docs")).text
    assert '"persistAuthorization": true' in page  # the token survives a reload
    redirect = re.search(r"oauth2RedirectUrl: window.location.origin \+ '([^']+)'", page)
    assert redirect is not None, page
    answer = await client.get(redirect.group(1))
    assert answer.status_code == 200
    assert "oauth2" in answer.text.lower()


async def test_the_docs_assets_are_not_part_of_the_api_description(
    client: httpx.AsyncClient,
) -> None:
    schema: dict[str, Any] = (await client.get("/openapi.json")).json()
    assert not [p for p in schema["paths"] if p.startswith(("/docs", "/redoc", "/static"))]


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_survey_pages_load_nothing_from_elsewhere(language: str) -> None:
    from feedback.api.pages import survey_page, thanks_page
    from feedback.domain.texts import texts_for

    texts = texts_for(language)
    for html in (survey_page(texts, None), survey_page(texts, None, reminder=True)):
        assert assets_of(html) == []  # styles inline, no script: works offline and without JS
        assert "://" not in html
    assert "://" not in thanks_page(texts, updated=False)
