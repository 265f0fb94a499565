"""Raw e-mails (message/rfc822), and JSON bodies too large to validate in passing, are parsed
and validated off the event loop, in worker processes with a time budget, so no request can
hold up intake's others. (A JSON e-mail's HTML is sanitized, and its text extracted, during
validation: 500,000 `&` took 3 s, 166,000 `<p>` 0.6 s. Small bodies, the hot path, are still
validated in the request, where a round trip to a worker would cost more than the work.)

Why processes, not threads (measured on the two-core development machine): while two threads
of intake's process ran parser-sized CPU work, /healthz answered in up to 50 ms (p90 19 ms): the
GIL changes hands every 5 ms and the event loop waits for it after every select. With the same
work in two worker processes: at most 10 ms (p90 2 ms), as when idle. And a thread cannot be
stopped, while a worker process enforces its budget itself: SIGALRM interrupts the parser (pure
Python) between two bytecodes. The limits in `intake.domain.rfc822` keep every message well
under a second of CPU; the budget guards against what they miss. One C call cannot be
interrupted: the HTML sanitizer, at most a few seconds on the largest HTML the limits let
through (500,000 `&`), after which the budget's error is raised.

Costs: a worker process per intake process (`INTAKE_RAW_EMAIL_WORKERS`, forked from a
forkserver that has this module imported), and pickling the message there and the validated
contact back (well under a millisecond for ordinary mail).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from pydantic import ValidationError

from ccshared.problems import FieldError, Problem, field_errors
from intake.domain.contact_models import (
    CONTEXT_MAX_FUTURE_SKEW_S,
    CONTEXT_NOW,
    Contact,
    ContactBatch,
    parse_contact,
    parse_contact_json,
)
from intake.domain.rfc822 import InvalidRawEmail, read_rfc822

log = logging.getLogger(__name__)


class InvalidContact(Exception):
    """The body is not a valid contact; `args[0]` are the fields at fault (as dicts: a
    pydantic ValidationError cannot cross a process boundary)."""

    @classmethod
    def of(cls, exc: ValidationError) -> InvalidContact:
        errors = field_errors(exc.errors(include_url=False), prefix=("body",))
        return cls([e.model_dump() for e in errors])


class _OverBudget(BaseException):
    """Raised by SIGALRM in a worker. Not an Exception, so that no parser or validator
    swallows it on its way out."""


def email_contact(raw: bytes, context: dict[str, Any]) -> tuple[Contact, bool]:
    """The validated contact of a raw message, and whether its `received_at` is only the
    request's time (no Date or Received header said when it arrived)."""
    parsed = read_rfc822(
        raw,
        fallback_received_at=context[CONTEXT_NOW],
        max_future_skew_s=context[CONTEXT_MAX_FUTURE_SKEW_S],
    )
    try:
        contact = parse_contact(parsed.body, context=context)
    except ValidationError as exc:
        raise InvalidContact.of(exc) from None
    return contact, parsed.received_at_is_request_time


def json_contact(raw: bytes, context: dict[str, Any]) -> tuple[Contact, bool]:
    """The validated contact of a JSON body (as `parse_contact_json`)."""
    try:
        return parse_contact_json(raw, context=context), False
    except ValidationError as exc:
        raise InvalidContact.of(exc) from None


class TooManyItems(Exception):
    """The batch holds more items than allowed; `args[0]` is the limit."""


# Where `batch_contacts` finds the largest number of items a batch may hold.
CONTEXT_BATCH_MAX_ITEMS = "intake_batch_max_items"

BatchItem = Contact | list[FieldError]
"""An item of a batch: its validated contact, or the fields at fault."""


def read_batch(raw: bytes, context: dict[str, Any]) -> list[BatchItem]:
    """The items of a `POST /v1/contacts:batch` body, each validated on its own (so one bad
    item does not refuse the others). Raises `ValidationError` for the envelope, and
    `TooManyItems` (before any item is validated) over `context[CONTEXT_BATCH_MAX_ITEMS]`."""
    batch = ContactBatch.model_validate_json(raw)
    limit = context[CONTEXT_BATCH_MAX_ITEMS]
    if len(batch.items) > limit:
        raise TooManyItems(limit)
    items: list[BatchItem] = []
    for item in batch.items:
        try:
            items.append(parse_contact(item, context=context))
        except ValidationError as exc:
            # The offending input is left out on purpose: it may be large or personal.
            items.append(field_errors(exc.errors(include_url=False)))
    return items


def batch_contacts(raw: bytes, context: dict[str, Any]) -> list[BatchItem]:
    """`read_batch`, with the envelope's errors as `InvalidContact` (to cross processes)."""
    try:
        return read_batch(raw, context)
    except ValidationError as exc:
        raise InvalidContact.of(exc) from None


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise _OverBudget


_PARSERS: dict[str, Callable[[bytes, dict[str, Any]], Any]] = {
    "email": email_contact,
    "json": json_contact,
    "batch": batch_contacts,
}


def _contact_within(kind: str, raw: bytes, context: dict[str, Any], budget_s: float) -> Any:
    """A parser of `_PARSERS` in a worker process, stopped after `budget_s` of wall time."""
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, budget_s)
    try:
        return _PARSERS[kind](raw, context)
    except _OverBudget:
        raise InvalidRawEmail(
            f"the body took more than {budget_s} s to parse", "body", "parse_timeout"
        ) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _ready() -> bool:
    return True


def _init_worker() -> None:
    # Parsing yields the CPU to the service's request-serving processes: on a small machine
    # a busy worker otherwise delays the event loop's wake-ups by tens of milliseconds.
    os.nice(10)
    # Ctrl-C reaches the whole process group; the service stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class FairSlots:
    """`slots` workers shared by owners (API keys) in turns: when a worker comes free, of the
    owners waiting, the one served least recently (or never) gets it, however many bodies
    another owner has queued. A waiter cancelled (say, by a timeout) leaves its queue, or gives
    back a slot it was given."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting: dict[Hashable, deque[asyncio.Future[None]]] = {}  # owner -> waiters
        self._served: dict[Hashable, int] = {}  # owner -> the turn it last got a slot
        self._turn = 0

    def _grant(self, owner: Hashable) -> None:
        if len(self._served) >= 10_000:  # owners are keys: few; bounded anyway
            self._served.clear()
        self._turn += 1
        self._served[owner] = self._turn

    async def acquire(self, owner: Hashable) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            self._grant(owner)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(owner, deque()).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # given a slot, and cancelled before using it
            else:
                queue = self._waiting.get(owner)
                if queue is not None and waiter in queue:
                    queue.remove(waiter)
                    if not queue:
                        del self._waiting[owner]
            raise

    def release(self) -> None:
        while self._waiting:
            owner = min(self._waiting, key=lambda o: self._served.get(o, 0))
            queue = self._waiting[owner]
            waiter = queue.popleft()
            if not queue:
                del self._waiting[owner]
            if not waiter.done():
                self._grant(owner)
                waiter.set_result(None)
                return
        self._free += 1


class ParsePool:
    """Hands bodies to worker processes (or, with `workers=0`, to a thread of this process: no
    budget can be enforced there, and the GIL is shared with the event loop)."""

    def __init__(
        self,
        *,
        workers: int,
        budget_s: float,
        max_pending: int,
        max_pending_per_owner: int | None = None,
        max_wait_s: float = 10.0,
    ) -> None:
        self.workers = workers
        self.budget_s = budget_s
        self.max_pending = max_pending
        # One owner (API key) may have at most this many bodies waiting or being parsed.
        self.max_pending_per_owner = max_pending_per_owner or max(1, max_pending // 4)
        # How long a body waits for a free worker before it is a 503 (the budget counts from
        # the start of its own parse, not from its arrival).
        self.max_wait_s = max_wait_s
        self._pending = 0
        self._pending_of: dict[Hashable, int] = {}
        self._slots = FairSlots(max(1, workers))
        self._executor: Executor | None = None

    def start(self) -> None:
        if self.workers == 0:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="parse-pool")
            return
        context = multiprocessing.get_context("forkserver")
        # Workers are forked from a server that has imported the parser once already.
        context.set_forkserver_preload([__name__])
        self._executor = ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_init_worker
        )
        try:
            self._executor.submit(_ready)  # start the worker now, not on the first e-mail
        except (OSError, EOFError, BrokenProcessPool) as exc:  # it is tried again on first use
            log.warning("the parser's worker process did not start: %r", exc)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def email_contact(
        self, raw: bytes, context: dict[str, Any], owner: Hashable = None
    ) -> tuple[Contact, bool]:
        """See `email_contact`. `owner` (the API key) is whom the body counts against for
        fairness (`max_pending_per_owner`, and turns at the workers)."""
        contact: tuple[Contact, bool] = await self._contact("email", raw, context, owner)
        return contact

    async def json_contact(
        self, raw: bytes, context: dict[str, Any], owner: Hashable = None
    ) -> Contact:
        """See `json_contact`."""
        parsed: tuple[Contact, bool] = await self._contact("json", raw, context, owner)
        return parsed[0]

    async def batch_contacts(
        self, raw: bytes, context: dict[str, Any], max_items: int, owner: Hashable = None
    ) -> list[BatchItem]:
        """See `read_batch`; the envelope's errors are a 422 `Problem` like a contact's."""
        items: list[BatchItem] = await self._contact(
            "batch", raw, {**context, CONTEXT_BATCH_MAX_ITEMS: max_items}, owner
        )
        return items

    def _busy(self, detail: str) -> Problem:
        return Problem(
            detail,
            status=503,
            slug="unavailable",
            headers={"Retry-After": str(max(1, math.ceil(self.budget_s)))},
        )

    async def _contact(
        self, kind: str, raw: bytes, context: dict[str, Any], owner: Hashable = None
    ) -> Any:
        """Raises `Problem` for every refusal: 422 (413 for plain size) for the body, 503 when
        too many are waiting (in all, or of this owner), when no worker was free within
        `max_wait_s`, or when the worker died."""
        if self._executor is None:
            raise RuntimeError("the raw e-mail parser is not started")
        if self._pending >= self.max_pending:
            raise Problem(
                f"{self._pending} large bodies are being parsed already; retry shortly.",
                status=503,
                slug="unavailable",
                headers={"Retry-After": "1"},
            )
        if self._pending_of.get(owner, 0) >= self.max_pending_per_owner:
            raise Problem(
                f"{self.max_pending_per_owner} large bodies of this key are being parsed "
                "already; retry shortly.",
                status=503,
                slug="unavailable",
                headers={"Retry-After": "1"},
            )
        self._pending += 1
        self._pending_of[owner] = self._pending_of.get(owner, 0) + 1
        try:
            try:
                await asyncio.wait_for(self._slots.acquire(owner), self.max_wait_s)
            except TimeoutError:
                raise self._busy(
                    f"No parser was free within {self.max_wait_s:g} s; nothing was kept, "
                    "retry shortly."
                ) from None
            return await self._run(kind, raw, context)
        finally:
            self._pending -= 1
            left = self._pending_of.pop(owner) - 1
            if left:
                self._pending_of[owner] = left

    async def _run(self, kind: str, raw: bytes, context: dict[str, Any]) -> Any:
        """One body on the worker slot `_contact` acquired (released here, once the worker
        is done with it, even if we stop waiting for it)."""
        context = {**context, CONTEXT_NOW: datetime.now(UTC)}
        loop = asyncio.get_running_loop()
        executor = self._executor
        try:
            if executor is None:
                raise RuntimeError("the raw e-mail parser is not started")
            if self.workers == 0:
                work = executor.submit(_PARSERS[kind], raw, context)
            else:
                work = executor.submit(_contact_within, kind, raw, context, self.budget_s)
        except BrokenProcessPool:
            self._slots.release()
            raise self._restarted(executor) from None
        except BaseException:
            self._slots.release()
            raise

        def _done(_: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(self._slots.release)

        work.add_done_callback(_done)
        try:
            # The budget counts from here, the start of the parse: the worker stops itself at
            # the budget (SIGALRM), and this backstop covers the one C call it cannot stop.
            return await asyncio.wait_for(asyncio.wrap_future(work), self.budget_s + 5)
        except InvalidRawEmail as exc:
            raise Problem(
                str(exc)[:1].upper() + str(exc)[1:] + ".",
                status=exc.status,
                slug="payload-too-large" if exc.status == 413 else "validation-error",
                errors=[FieldError(field=exc.field, message=str(exc), type=exc.kind)],
            ) from None
        except InvalidContact as exc:
            errors = [FieldError.model_validate(e) for e in exc.args[0]]
            raise Problem(
                "The request is invalid at: " + ", ".join(e.field for e in errors[:5]),
                status=422,
                slug="validation-error",
                errors=errors,
            ) from None
        except TimeoutError:
            raise Problem(
                f"The body could not be parsed within {self.budget_s} s.",
                status=422,
                slug="validation-error",
                errors=[
                    FieldError(field="body", message="parsing took too long", type="parse_timeout")
                ],
            ) from None
        except BrokenProcessPool:
            raise self._restarted(executor) from None

    def _restarted(self, executor: Executor | None) -> Problem:
        if self._executor is executor:  # the first to notice starts a new pool
            log.warning("a parser worker process died; starting a new one")
            self.close()
            self.start()
        return Problem(
            "The parser process restarted; retry.",
            status=503,
            slug="unavailable",
            headers={"Retry-After": "1"},
        )
