"""Group commit of accepted contacts: the hot path of intake.

Requests hand their validated contact to `ContactWriter.submit` and wait. A few writer tasks take
whatever has queued up and store it in one transaction with a handful of statements: look up
existing contacts (retries), resolve or create customers from their identities, then insert the
contacts and their outbox rows in one statement. Each request is answered only after its batch
has committed, so a 202 always means durable. Many requests share one commit, which is what makes
this fast (fsync per commit is the bottleneck of one-transaction-per-request).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import asyncpg

from ccshared.ids import uuid7

log = logging.getLogger(__name__)

# Which identity decides the customer when a contact's hints point at different customers.
IDENTITY_PRIORITY = ("account", "email", "phone", "handle", "visitor")

Identity = tuple[str, str]


@dataclass
class NewContact:
    contact_id: uuid.UUID
    channel: str
    external_id: str
    api_key_id: uuid.UUID | None
    idempotency_key: str | None
    request_hash: bytes
    received_at: datetime
    body_json: str
    identities: list[Identity]  # in IDENTITY_PRIORITY order
    customer_name: str | None
    # Builds the event once the customer is known: (event_id, envelope bytes).
    make_event: Callable[[uuid.UUID], tuple[uuid.UUID, bytes]]


@dataclass(frozen=True)
class StoredContact:
    contact_id: uuid.UUID
    customer_id: uuid.UUID
    status: Literal["accepted", "duplicate"]


class IdempotencyConflict(Exception):
    """The key (Idempotency-Key, or channel + external id) was used for a different contact."""

    def __init__(self, existing_id: uuid.UUID, by: Literal["idempotency_key", "external_id"]):
        self.existing_id = existing_id
        self.by = by
        super().__init__(f"{by} already used by contact {existing_id} with a different body")


@dataclass
class _Pending:
    contact: NewContact
    future: asyncio.Future[StoredContact] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(frozen=True)
class _Resolved:
    owners: list[uuid.UUID]  # per contact
    created_identities: set[Identity]  # rows this batch inserted
    new_customers: set[uuid.UUID]  # customers this batch created


class IdentityCache:
    """identity → customer id, bounded LRU. Identities never move between customers here."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Identity, uuid.UUID] = OrderedDict()

    def get(self, identity: Identity) -> uuid.UUID | None:
        owner = self._data.get(identity)
        if owner is not None:
            self._data.move_to_end(identity)
        return owner

    def put(self, identity: Identity, owner: uuid.UUID) -> None:
        if self.size <= 0:
            return
        self._data[identity] = owner
        self._data.move_to_end(identity)
        while len(self._data) > self.size:
            self._data.popitem(last=False)


# Index-friendly on both keys (an OR of the two would scan the whole table).
_EXISTING = """
SELECT c.id, c.customer_id, c.channel, c.external_id, c.api_key_id, c.idempotency_key,
       c.request_hash
FROM contacts c JOIN unnest($1::text[], $2::text[]) AS k(channel, external_id)
  ON c.channel = k.channel AND c.external_id = k.external_id
UNION
SELECT c.id, c.customer_id, c.channel, c.external_id, c.api_key_id, c.idempotency_key,
       c.request_hash
FROM contacts c JOIN unnest($3::uuid[], $4::text[]) AS k(api_key_id, idempotency_key)
  ON c.api_key_id = k.api_key_id AND c.idempotency_key = k.idempotency_key
"""

_IDENTITIES = """
SELECT kind, value, customer_id FROM customer_identities
WHERE (kind, value) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""

# New customers and their identities in one statement. An identity that a concurrent batch
# claimed first comes back with that batch's customer (DO UPDATE makes RETURNING report it).
_CLAIM_IDENTITIES = """
WITH new_customers AS (
    INSERT INTO customers (id, name) SELECT * FROM unnest($1::uuid[], $2::text[])
)
INSERT INTO customer_identities (kind, value, customer_id)
SELECT * FROM unnest($3::text[], $4::text[], $5::uuid[])
ON CONFLICT (kind, value) DO UPDATE SET kind = EXCLUDED.kind
RETURNING kind, value, customer_id
"""

_INSERT_CONTACTS = """
WITH input AS (
    SELECT * FROM unnest(
        $1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::bytea[],
        $8::timestamptz[], $9::text[], $10::uuid[], $11::bytea[]
    ) WITH ORDINALITY AS t(id, customer_id, channel, external_id, api_key_id, idempotency_key,
                           request_hash, received_at, body, event_id, event, ord)
), inserted AS (
    INSERT INTO contacts (id, customer_id, channel, external_id, api_key_id, idempotency_key,
                          request_hash, received_at, body)
    SELECT id, customer_id, channel, external_id, api_key_id, idempotency_key, request_hash,
           received_at, body::json
    FROM input
    ON CONFLICT DO NOTHING
    RETURNING id
), published AS (
    INSERT INTO outbox (topic, key, event_id, event_type, value)
    SELECT 'intake.contacts', i.customer_id::text, i.event_id, 'contact.received', i.event
    FROM input i JOIN inserted USING (id)
    ORDER BY i.ord  -- outbox ids in submission order: per-customer order within a batch
)
SELECT id FROM inserted
"""


class ContactWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_batch: int = 256,
        concurrency: int = 2,
        identity_cache_size: int = 200_000,
        linger_s: float = 0.0,
    ) -> None:
        self.pool = pool
        self.max_batch = max_batch
        self.concurrency = concurrency
        self.identities = IdentityCache(identity_cache_size)
        # Waiting a moment for more contacts makes batches larger: fewer statements and
        # commits per contact, for that moment of latency.
        self.linger_s = linger_s
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.batches = 0
        self.written = 0

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"contact-writer-{i}")
            for i in range(self.concurrency)
        ]

    async def close(self) -> None:
        """Write what has been submitted, then stop."""
        self._closing = True
        self._wake.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        log.info(
            "contact writer stopped: %d contacts in %d batches (%.1f per batch)",
            self.written,
            self.batches,
            self.written / max(1, self.batches),
        )

    async def submit(self, contact: NewContact) -> StoredContact:
        if self._closing:
            raise RuntimeError("intake is shutting down")
        pending = _Pending(contact)
        self._queue.append(pending)
        self._wake.set()
        return await pending.future

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.linger_s > 0 and len(self._queue) < self.max_batch and not self._closing:
                await asyncio.sleep(self.linger_s)
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            if self._queue:
                self._wake.set()  # let another writer take the rest now
            try:
                results = await self._write(batch)
            except Exception as exc:  # noqa: BLE001 - every waiting request must be answered
                log.warning("writing a batch of %d contacts failed: %s", len(batch), exc)
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            for pending, result in zip(batch, results, strict=True):
                if pending.future.done():
                    continue
                if isinstance(result, Exception):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)

    async def _write(self, batch: list[_Pending]) -> list[StoredContact | Exception]:
        contacts = [p.contact for p in batch]
        async with self.pool.acquire() as conn, conn.transaction():
            resolved = await self._resolve_customers(conn, contacts)
            owners = resolved.owners
            inserted = await self._insert(conn, list(zip(contacts, owners, strict=True)))
            results: list[StoredContact | Exception | None] = [
                StoredContact(c.contact_id, owner, "accepted") if c.contact_id in inserted else None
                for c, owner in zip(contacts, owners, strict=True)
            ]
            # Not inserted: a retry of a stored contact, the same contact twice in this batch,
            # or one that a concurrent batch stored first. Settle them as retries, and take back
            # what resolving their customer created, so a refused contact leaves no trace.
            missed = [i for i, r in enumerate(results) if r is None]
            if missed:
                settled: list[StoredContact | Exception | None] = [None] * len(missed)
                await self._settle_retries(conn, [contacts[i] for i in missed], settled)
                for i, result in zip(missed, settled, strict=True):
                    results[i] = result or RuntimeError("contact vanished during its write")
                await self._undo_unused(conn, contacts, results, resolved)
        self.batches += 1
        self.written += len(inserted)
        for contact, owner in zip(contacts, owners, strict=True):
            if contact.contact_id in inserted:
                for identity in contact.identities:
                    self.identities.put(identity, owner)
        return [r if r is not None else RuntimeError("unsettled") for r in results]

    async def _undo_unused(
        self,
        conn: asyncpg.Connection,
        contacts: list[NewContact],
        results: list[StoredContact | Exception | None],
        resolved: _Resolved,
    ) -> None:
        stored = [
            i
            for i, r in enumerate(results)
            if isinstance(r, StoredContact) and r.status == "accepted"
        ]
        kept = {identity for i in stored for identity in contacts[i].identities}
        used = {resolved.owners[i] for i in stored}
        identities = [i for i in resolved.created_identities if i not in kept]
        customers = [c for c in resolved.new_customers if c not in used]
        if identities:
            await conn.execute(
                "DELETE FROM customer_identities WHERE (kind, value) IN "
                "(SELECT * FROM unnest($1::text[], $2::text[]))",
                [k for k, _ in identities],
                [v for _, v in identities],
            )
        if customers:
            await conn.execute("DELETE FROM customers WHERE id = ANY($1::uuid[])", customers)

    async def _settle_retries(
        self,
        conn: asyncpg.Connection,
        contacts: list[NewContact],
        results: list[StoredContact | Exception | None],
    ) -> None:
        """Mark contacts already stored (same key, same body) as duplicates, or conflicts."""
        keyed = [c for c in contacts if c.idempotency_key is not None]
        rows = await conn.fetch(
            _EXISTING,
            [c.channel for c in contacts],
            [c.external_id for c in contacts],
            [c.api_key_id for c in keyed],
            [c.idempotency_key for c in keyed],
        )
        if not rows:
            return
        by_natural = {(r["channel"], r["external_id"]): r for r in rows}
        by_key = {(r["api_key_id"], r["idempotency_key"]): r for r in rows if r["idempotency_key"]}
        for i, c in enumerate(contacts):
            existing, by = None, "external_id"
            if c.idempotency_key is not None:
                existing = by_key.get((c.api_key_id, c.idempotency_key))
                by = "idempotency_key"
            if existing is None:
                existing, by = by_natural.get((c.channel, c.external_id)), "external_id"
            if existing is None:
                continue
            if bytes(existing["request_hash"]) == c.request_hash and (
                existing["channel"],
                existing["external_id"],
            ) == (c.channel, c.external_id):
                results[i] = StoredContact(existing["id"], existing["customer_id"], "duplicate")
            else:
                results[i] = IdempotencyConflict(existing["id"], by)  # type: ignore[arg-type]

    async def _resolve_customers(
        self, conn: asyncpg.Connection, contacts: list[NewContact]
    ) -> _Resolved:
        known: dict[Identity, uuid.UUID] = {}
        unknown: set[Identity] = set()
        for c in contacts:
            for identity in c.identities:
                owner = self.identities.get(identity)
                if owner is not None:
                    known[identity] = owner
                else:
                    unknown.add(identity)
        if unknown:
            kinds, values = zip(*unknown, strict=True)
            for row in await conn.fetch(_IDENTITIES, list(kinds), list(values)):
                known[(row["kind"], row["value"])] = row["customer_id"]

        owners: list[uuid.UUID] = []
        new_customers: dict[uuid.UUID, str | None] = {}
        claims: dict[Identity, uuid.UUID] = {}
        for c in contacts:
            owner = next((known[i] for i in c.identities if i in known), None)
            if owner is None:
                owner = next((claims[i] for i in c.identities if i in claims), None)
            if owner is None:
                owner = uuid7()
                new_customers[owner] = c.customer_name
            for identity in c.identities:  # merge new hints onto the customer
                if identity not in known and identity not in claims:
                    claims[identity] = owner
            owners.append(owner)
        if not claims:
            return _Resolved(owners, set(), set())

        rows = await conn.fetch(
            _CLAIM_IDENTITIES,
            list(new_customers),
            list(new_customers.values()),
            [k for k, _ in claims],
            [v for _, v in claims],
            list(claims.values()),
        )
        # A concurrent batch may have created the same new customer first: adopt theirs.
        adopted: dict[uuid.UUID, uuid.UUID] = {}
        created: set[Identity] = set()
        for row in rows:
            identity = (row["kind"], row["value"])
            ours = claims[identity]
            if row["customer_id"] == ours:
                created.add(identity)
            elif ours in new_customers:
                adopted[ours] = row["customer_id"]
        if adopted:
            await conn.execute(
                "UPDATE customer_identities SET customer_id = m.theirs "
                "FROM unnest($1::uuid[], $2::uuid[]) AS m(ours, theirs) "
                "WHERE customer_identities.customer_id = m.ours",
                list(adopted),
                list(adopted.values()),
            )
            await conn.execute("DELETE FROM customers WHERE id = ANY($1::uuid[])", list(adopted))
            owners = [adopted.get(o, o) for o in owners]
        return _Resolved(owners, created, set(new_customers) - set(adopted))

    async def _insert(
        self, conn: asyncpg.Connection, rows: list[tuple[NewContact, uuid.UUID]]
    ) -> set[uuid.UUID]:
        if not rows:
            return set()
        events = [c.make_event(owner) for c, owner in rows]
        inserted = await conn.fetch(
            _INSERT_CONTACTS,
            [c.contact_id for c, _ in rows],
            [owner for _, owner in rows],
            [c.channel for c, _ in rows],
            [c.external_id for c, _ in rows],
            [c.api_key_id for c, _ in rows],
            [c.idempotency_key for c, _ in rows],
            [c.request_hash for c, _ in rows],
            [c.received_at for c, _ in rows],
            [c.body_json for c, _ in rows],
            [event_id for event_id, _ in events],
            [value for _, value in events],
        )
        return {r["id"] for r in inserted}


async def wait_closed(writer: ContactWriter, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(writer.close(), timeout=timeout_s)
