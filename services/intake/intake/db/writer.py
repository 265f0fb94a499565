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
from typing import Any, Literal

import asyncpg

from ccshared.ids import uuid7
from ccshared.outbox import outbox_arrays, outbox_part, outbox_tuple
from intake.domain.contacts import CONTACT_RECEIVED

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
    # Whose contact it is: the channel id and Idempotency-Key are unique per integration.
    integration_id: uuid.UUID
    idempotency_key: str | None
    request_hash: bytes
    received_at: datetime
    body_json: str
    identities: list[Identity]  # in IDENTITY_PRIORITY order
    customer_name: str | None
    # Builds the event once the customer is known: (event_id, envelope bytes).
    make_event: Callable[[uuid.UUID], tuple[uuid.UUID, bytes]]
    # Its event's Kafka headers as JSON: the request's trace context when traced
    # (ccshared.tracing.headers_json, taken in the request: the writer is another task).
    headers: str = "{}"


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


class ContactTooLarge(Exception):
    """The contact's event would be larger than Kafka takes (`max_event_bytes`)."""

    def __init__(self, size: int, limit: int):
        self.size = size
        self.limit = limit
        super().__init__(f"the contact.received event would be {size} bytes (limit {limit})")


@dataclass
class _Pending:
    contact: NewContact
    attempts: int = 0
    future: asyncio.Future[StoredContact] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class IdentityCache:
    """identity → customer id, bounded LRU. Identities move only when customers are merged
    (customer.merged): the write statement then finds the cached customer merged and the
    writer forgets the contact's identities (`merged` rows)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Identity, uuid.UUID] = OrderedDict()

    def get(self, identity: Identity) -> uuid.UUID | None:
        owner = self._data.get(identity)
        if owner is not None:
            self._data.move_to_end(identity)
        return owner

    def forget(self, identity: Identity) -> None:
        self._data.pop(identity, None)

    def put(self, identity: Identity, owner: uuid.UUID) -> None:
        if self.size <= 0:
            return
        self._data[identity] = owner
        self._data.move_to_end(identity)
        while len(self._data) > self.size:
            self._data.popitem(last=False)


# Lookups by key are LATERAL ... LIMIT 1 throughout: one index probe per contact of the batch,
# whatever the planner believes about the table. Plain joins against unnest() got hash joins
# over the whole table, planned while it was small and kept in the prepared statement (the
# benchmark saw two sequential scans of `contacts` per batch).
_EXISTING = """
SELECT c.id, c.customer_id, c.channel, c.external_id, c.integration_id, c.idempotency_key,
       c.request_hash
FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[])
    AS k(channel, external_id, integration_id, idempotency_key)
CROSS JOIN LATERAL (
    SELECT * FROM contacts c WHERE c.integration_id = k.integration_id
        AND c.idempotency_key = k.idempotency_key
    UNION ALL
    SELECT * FROM contacts c WHERE c.integration_id = k.integration_id
        AND c.channel = k.channel AND c.external_id = k.external_id
) AS c
"""

# The events of the contacts stored (not held back, not already there), in submission order
# (per-customer order within a batch): the outbox rows' arrays are $18 to $23, one per contact.
_EVENTS = outbox_part(
    first_param=18, where="u.ord IN (SELECT s.ord FROM storing s JOIN inserted USING (id))"
)

# A whole batch in one statement, so one round trip and one commit (autocommit). The writer
# has already picked each contact's customer: the cached owner of its strongest known identity,
# or a new customer (shared by contacts of the batch that share an identity). Identities the
# cache did not know are claimed here. A contact is held back, not stored, when one of its
# claims that could change its customer ("decisive": stronger than what decided it, or any
# claim of a new customer) belongs to another customer already (`blocked`: the rows come back
# so the writer learns them and retries the contact) or was claimed by a concurrent batch after
# this statement's snapshot or went to another customer of the batch (`lost`), or when the
# customer the cache chose was merged into another since (`merged`: customer.merged; the
# writer forgets the contact's cached identities and resolves them again). Contacts whose
# channel id or idempotency key is already stored for their integration (`taken`) claim
# nothing; the writer settles them as retries or conflicts.
_WRITE_BATCH = f"""
WITH input AS (
    SELECT * FROM unnest(
        $1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::bytea[],
        $8::timestamptz[], $9::text[], $17::uuid[]
    ) WITH ORDINALITY AS t(id, customer_id, channel, external_id, api_key_id, idempotency_key,
                           request_hash, received_at, body, integration_id, ord)
), taken AS (
    SELECT i.ord FROM input i CROSS JOIN LATERAL (
        SELECT 1 FROM contacts c WHERE c.integration_id = i.integration_id
            AND c.channel = i.channel AND c.external_id = i.external_id
        UNION ALL
        SELECT 1 FROM contacts c
        WHERE c.integration_id = i.integration_id AND c.idempotency_key = i.idempotency_key
        LIMIT 1
    ) AS hit
), merged AS (
    SELECT i.ord, i.customer_id FROM input i
    WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = i.customer_id
                  AND c.merged_into IS NOT NULL)
), claim AS (
    SELECT * FROM unnest($10::text[], $11::text[], $12::uuid[], $13::bigint[], $14::bool[])
        AS t(kind, value, customer_id, ord, decisive)
    WHERE ord NOT IN (SELECT ord FROM taken) AND ord NOT IN (SELECT ord FROM merged)
), existing AS (
    SELECT cl.ord, cl.kind, cl.value, ci.customer_id, cl.decisive,
           ci.customer_id <> cl.customer_id AS foreign_owner
    FROM claim cl CROSS JOIN LATERAL (
        SELECT customer_id FROM customer_identities i
        WHERE i.kind = cl.kind AND i.value = cl.value LIMIT 1
    ) AS ci
), blocked AS (
    SELECT DISTINCT ord FROM existing WHERE decisive AND foreign_owner
), fresh AS (
    SELECT cl.* FROM claim cl
    WHERE cl.ord NOT IN (SELECT ord FROM blocked)
      AND NOT EXISTS (SELECT 1 FROM existing e WHERE e.kind = cl.kind AND e.value = cl.value)
), claimed AS (
    INSERT INTO customer_identities (kind, value, customer_id)
    SELECT DISTINCT ON (kind, value) kind, value, customer_id FROM fresh ORDER BY kind, value, ord
    ON CONFLICT (kind, value) DO NOTHING
    RETURNING kind, value, customer_id
), lost AS (
    SELECT DISTINCT f.ord FROM fresh f
    WHERE f.decisive
      AND NOT EXISTS (SELECT 1 FROM claimed c
                      WHERE c.kind = f.kind AND c.value = f.value
                        AND c.customer_id = f.customer_id)
), storing AS (
    SELECT * FROM input
    WHERE ord NOT IN (SELECT ord FROM taken)
      AND ord NOT IN (SELECT ord FROM merged)
      AND ord NOT IN (SELECT ord FROM blocked)
      AND ord NOT IN (SELECT ord FROM lost)
), new_customers AS (
    INSERT INTO customers (id, name)
    SELECT n.id, n.name FROM unnest($15::uuid[], $16::text[]) AS n(id, name)
    WHERE n.id IN (SELECT customer_id FROM storing UNION SELECT customer_id FROM claimed)
), inserted AS (
    INSERT INTO contacts (id, customer_id, channel, external_id, api_key_id, integration_id,
                          idempotency_key, request_hash, received_at, body)
    SELECT id, customer_id, channel, external_id, api_key_id, integration_id, idempotency_key,
           request_hash, received_at, body::json
    FROM storing
    ON CONFLICT DO NOTHING
    RETURNING id
), {_EVENTS[0]} AS ({_EVENTS[1]})
SELECT 'inserted' AS what, NULL::bigint AS ord, id, NULL AS kind, NULL AS value,
       NULL::uuid AS customer_id
FROM inserted
UNION ALL
SELECT 'claimed', NULL, NULL, kind, value, customer_id FROM claimed
UNION ALL
SELECT 'owned', ord, NULL, kind, value, customer_id FROM existing
UNION ALL
SELECT 'held', ord, NULL, NULL, NULL, NULL FROM blocked
UNION ALL
SELECT 'held', ord, NULL, NULL, NULL, NULL FROM lost
UNION ALL
SELECT 'merged', ord, NULL, NULL, NULL, customer_id FROM merged
"""  # noqa: S608 - the only value put in is ccshared's outbox part

# How many times a contact is held back (its customer turned out to be another) before its
# request is answered 503. Each hold teaches the cache, so a second attempt normally succeeds.
MAX_ATTEMPTS = 5


class ContactWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_batch: int = 256,
        concurrency: int = 2,
        identity_cache_size: int = 200_000,
        linger_s: float = 0.0,
        max_event_bytes: int = 524_288,
    ) -> None:
        self.pool = pool
        # The outbox relay cannot publish an event larger than Kafka's message limit, so none
        # is ever written: it is refused here, where its bytes exist anyway.
        self.max_event_bytes = max_event_bytes
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
        self.held = 0

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
            "contact writer stopped: %d contacts in %d batches (%.1f per batch), %d held back",
            self.written,
            self.batches,
            self.written / max(1, self.batches),
            self.held,
        )

    async def submit(self, contact: NewContact) -> StoredContact:
        if self._closing:
            raise RuntimeError("intake is shutting down")
        pending = _Pending(contact)
        self._queue.append(pending)
        self._wake.set()
        return await pending.future

    def _take_batch(self) -> list[_Pending]:
        """Up to max_batch contacts, oldest first; one that repeats the channel id or
        idempotency key of an earlier one in the batch waits for the next batch, where it is
        settled as that one's retry (or conflict)."""
        batch: list[_Pending] = []
        rest: list[_Pending] = []
        keys: set[tuple[object, ...]] = set()
        for pending in self._queue:
            c = pending.contact
            natural = ("n", c.integration_id, c.channel, c.external_id)
            keyed = ("k", c.integration_id, c.idempotency_key) if c.idempotency_key else None
            if len(batch) >= self.max_batch or natural in keys or keyed in keys:
                rest.append(pending)
                continue
            keys.add(natural)
            if keyed:
                keys.add(keyed)
            batch.append(pending)
        self._queue = rest
        return batch

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
            batch = self._take_batch()
            if not batch:
                continue
            if self._queue:
                self._wake.set()  # let another writer take the rest now
            try:
                results = await self._write([p.contact for p in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting request must be answered
                log.warning("writing a batch of %d contacts failed: %s", len(batch), exc)
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            retry: list[_Pending] = []
            for pending, result in zip(batch, results, strict=True):
                if pending.future.done():
                    continue
                if result is None:  # held back: its customer is known better now
                    pending.attempts += 1
                    if pending.attempts < MAX_ATTEMPTS:
                        retry.append(pending)
                        continue
                    result = RuntimeError("the contact's customer kept changing under it")
                if isinstance(result, Exception):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)
            if retry:
                self.held += len(retry)
                self._queue[:0] = retry
                self._wake.set()

    def _choose_customers(
        self, contacts: list[NewContact]
    ) -> tuple[list[uuid.UUID], dict[uuid.UUID, str | None], list[tuple[Identity, int, bool]]]:
        """Each contact's customer as far as the cache knows, the new customers this batch
        would create, and the identities to claim: (identity, contact index, decisive)."""
        owners: list[uuid.UUID] = []
        new_customers: dict[uuid.UUID, str | None] = {}
        batch_claims: dict[Identity, uuid.UUID] = {}
        claims: list[tuple[Identity, int, bool]] = []
        for index, c in enumerate(contacts):
            owner, decided_by = None, len(c.identities)
            for rank, identity in enumerate(c.identities):
                owner = self.identities.get(identity)
                if owner is not None:
                    decided_by = rank
                    break
            if owner is None:
                owner = next((batch_claims[i] for i in c.identities if i in batch_claims), None)
            if owner is None:
                owner = uuid7()
                new_customers[owner] = c.customer_name
            is_new = owner in new_customers
            for rank, identity in enumerate(c.identities):
                if rank == decided_by or self.identities.get(identity) is not None:
                    continue
                batch_claims.setdefault(identity, owner)
                claims.append((identity, index, is_new or rank < decided_by))
            owners.append(owner)
        return owners, new_customers, claims

    async def _write(self, contacts: list[NewContact]) -> list[StoredContact | Exception | None]:
        """Per contact: stored (accepted or duplicate), refused (an exception), or None when
        it was held back and should be written again."""
        owners, new_customers, claims = self._choose_customers(contacts)
        events = [c.make_event(owner) for c, owner in zip(contacts, owners, strict=True)]
        limit = self.max_event_bytes
        too_large = {i: len(value) for i, (_, value) in enumerate(events) if len(value) > limit}
        if too_large:  # rare: write the others as a batch of their own
            rest = [c for i, c in enumerate(contacts) if i not in too_large]
            written = iter(await self._write(rest) if rest else [])
            return [
                ContactTooLarge(too_large[i], self.max_event_bytes)
                if i in too_large
                else next(written)
                for i in range(len(contacts))
            ]
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                _WRITE_BATCH,
                [c.contact_id for c in contacts],
                owners,
                [c.channel for c in contacts],
                [c.external_id for c in contacts],
                [c.api_key_id for c in contacts],
                [c.idempotency_key for c in contacts],
                [c.request_hash for c in contacts],
                [c.received_at for c in contacts],
                [c.body_json for c in contacts],
                [identity[0] for identity, _, _ in claims],
                [identity[1] for identity, _, _ in claims],
                [owners[index] for _, index, _ in claims],
                [index + 1 for _, index, _ in claims],
                [decisive for _, _, decisive in claims],
                list(new_customers),
                list(new_customers.values()),
                [c.integration_id for c in contacts],
                *_outbox_arrays(owners, events, [c.headers for c in contacts]),
            )
            inserted: set[uuid.UUID] = set()
            held: set[int] = set()
            created: dict[Identity, uuid.UUID] = {}
            for row in rows:
                what = row["what"]
                if what == "inserted":
                    inserted.add(row["id"])
                elif what == "held":
                    held.add(row["ord"] - 1)
                elif what == "merged":  # the cache is stale: its identities moved
                    held.add(row["ord"] - 1)
                    for identity in contacts[row["ord"] - 1].identities:
                        self.identities.forget(identity)
                else:  # claimed by this batch, or someone's already: either way, now known
                    identity = (row["kind"], row["value"])
                    self.identities.put(identity, row["customer_id"])
                    if what == "claimed":
                        created[identity] = row["customer_id"]
            results: list[StoredContact | Exception | None] = []
            unsettled: list[int] = []
            for index, (c, owner) in enumerate(zip(contacts, owners, strict=True)):
                if c.contact_id in inserted:
                    results.append(StoredContact(c.contact_id, owner, "accepted"))
                elif index in held:
                    results.append(None)
                else:  # its channel id or idempotency key was taken: a retry, or a conflict
                    results.append(None)
                    unsettled.append(index)
            if unsettled:
                settled: list[StoredContact | Exception | None] = [None] * len(unsettled)
                await self._settle_retries(conn, [contacts[i] for i in unsettled], settled)
                for i, result in zip(unsettled, settled, strict=True):
                    results[i] = result or RuntimeError("contact vanished during its write")
            if created and (held or unsettled):
                await self._undo_unused(conn, contacts, owners, results, created, new_customers)
        self.batches += 1
        self.written += len(inserted)
        return results

    async def _undo_unused(
        self,
        conn: asyncpg.Connection,
        contacts: list[NewContact],
        owners: list[uuid.UUID],
        results: list[StoredContact | Exception | None],
        created: dict[Identity, uuid.UUID],
        new_customers: dict[uuid.UUID, str | None],
    ) -> None:
        """A contact that was not stored leaves no identity or customer behind: take back
        what this batch claimed for customers no stored contact of the batch uses."""
        used = {
            owners[i]
            for i, r in enumerate(results)
            if isinstance(r, StoredContact) and r.status == "accepted"
        }
        unused = {i: o for i, o in created.items() if o in new_customers and o not in used}
        if not unused:
            return
        await conn.execute(
            "WITH gone AS (DELETE FROM customer_identities WHERE (kind, value) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[])) RETURNING customer_id) "
            "DELETE FROM customers c USING gone WHERE c.id = gone.customer_id "
            "AND NOT EXISTS (SELECT 1 FROM contacts WHERE customer_id = c.id)",
            [k for k, _ in unused],
            [v for _, v in unused],
        )
        for identity in unused:
            self.identities.forget(identity)

    async def _settle_retries(
        self,
        conn: asyncpg.Connection,
        contacts: list[NewContact],
        results: list[StoredContact | Exception | None],
    ) -> None:
        """Mark contacts already stored (same key, same body) as duplicates, or conflicts."""
        rows = await conn.fetch(
            _EXISTING,
            [c.channel for c in contacts],
            [c.external_id for c in contacts],
            [c.integration_id for c in contacts],
            [c.idempotency_key for c in contacts],
        )
        if not rows:
            return
        by_natural = {(r["integration_id"], r["channel"], r["external_id"]): r for r in rows}
        by_key = {
            (r["integration_id"], r["idempotency_key"]): r for r in rows if r["idempotency_key"]
        }
        for i, c in enumerate(contacts):
            existing = None
            by: Literal["idempotency_key", "external_id"] = "external_id"
            if c.idempotency_key is not None:
                existing = by_key.get((c.integration_id, c.idempotency_key))
                by = "idempotency_key"
            if existing is None:
                existing = by_natural.get((c.integration_id, c.channel, c.external_id))
                by = "external_id"
            if existing is None:
                continue
            if bytes(existing["request_hash"]) == c.request_hash and (
                existing["channel"],
                existing["external_id"],
            ) == (c.channel, c.external_id):
                results[i] = StoredContact(existing["id"], existing["customer_id"], "duplicate")
            else:
                results[i] = IdempotencyConflict(existing["id"], by)


def _outbox_arrays(
    owners: list[uuid.UUID], events: list[tuple[uuid.UUID, bytes]], headers: list[str]
) -> list[list[Any]]:
    """The outbox part's parameters: each contact's contact.received event, keyed by its
    customer (the statement keeps those of the contacts it stores)."""
    return outbox_arrays(
        [
            outbox_tuple(CONTACT_RECEIVED, str(owner), event_id, value, extra)
            for owner, (event_id, value), extra in zip(owners, events, headers, strict=True)
        ]
    )


async def wait_closed(writer: ContactWriter, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(writer.close(), timeout=timeout_s)
