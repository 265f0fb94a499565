"""Builds the console's parts at start (the API clients, the page templates, the live stream)
and stops them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ccshared.service import Runtime
from console.apis import Apis, Service
from console.settings import ConsoleSettings

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass
class ConsoleParts:
    settings: ConsoleSettings
    apis: Apis
    templates: Environment
    # The live stream (console.live): set when it has started; None in tests that need none.
    live: Any = None


def template_environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


async def start(
    runtime: Runtime,
    settings: ConsoleSettings,
    transports: Mapping[Service, httpx.AsyncBaseTransport] | None = None,
) -> None:
    """`transports`: the APIs' apps in the same process (tests), instead of over the network."""
    runtime.parts = ConsoleParts(settings, Apis(settings, transports), template_environment())


async def stop(runtime: Runtime, settings: ConsoleSettings) -> None:
    parts: ConsoleParts | None = runtime.parts
    if parts is not None:
        if parts.live is not None:
            await parts.live.stop()
        await parts.apis.close()
