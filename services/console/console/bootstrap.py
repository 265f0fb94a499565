"""Builds the console's parts at start (the API clients, the page templates, the live stream)
and stops them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from ccshared.service import Runtime
from console.apis import Apis, Service
from console.live import Live
from console.settings import ConsoleSettings

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass
class ConsoleParts:
    settings: ConsoleSettings
    apis: Apis
    templates: Environment
    # The live stream (console.live): its Kafka reader, buffer and open streams.
    live: Live | None = None


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
    live = Live(settings)
    runtime.parts = ConsoleParts(settings, Apis(settings, transports), template_environment(), live)
    live.start()
    # Not ready until the live reader is positioned at the end of every partition: a browser
    # sent here before would miss what happens meanwhile.
    runtime.readiness.checks["live"] = live.ready


async def stop(runtime: Runtime, settings: ConsoleSettings) -> None:
    parts: ConsoleParts | None = runtime.parts
    if parts is not None:
        if parts.live is not None:
            await parts.live.stop()
        await parts.apis.close()
