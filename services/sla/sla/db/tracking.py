"""Applies the router's ticket events to each ticket's SLA clocks: matches the policy, moves the
clocks (the domain's TicketClocks rules), saves them, reschedules the ticket's pending timers and
announces the targets met — all in the caller's transaction."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from ccshared.events import Envelope, new_event
from ccshared.events.payloads import (
    SlaBreached,
    SlaDeadlineChanged,
    SlaMet,
    SlaMetric,
    TicketAssigned,
    TicketClosed,
    TicketContactAdded,
    TicketOpened,
    TicketReopened,
    TicketReplied,
    TicketResolved,
    TicketRouted,
    TicketStatusChanged,
    TicketTransferred,
)
from ccshared.outbox import enqueue, partition_for
from sla.db.clocks import clocks_from_json, clocks_to_json, next_due
from sla.db.config import ConfigCache, SlaConfig
from sla.db.segments import registered_segment
from sla.db.tickets import (
    TicketRow,
    lock_ticket,
    record_outcomes,
    replace_timers,
    save_ticket,
)
from sla.domain.clock import SlaClock, TicketClocks
from sla.domain.policy import (
    REGISTRY_SEGMENTS,
    SlaPolicy,
    TicketAttributes,
    match_policy,
    ticket_segment,
)
from sla.domain.timers import timer_key, timer_rows

log = logging.getLogger(__name__)

PRODUCER = "sla"

TICKET_EVENT_TYPES = frozenset(
    {
        "ticket.opened",
        "ticket.contact_added",
        "ticket.status_changed",
        "ticket.routed",
        "ticket.assigned",
        "ticket.transferred",
        "ticket.replied",
        "ticket.resolved",
        "ticket.reopened",
        "ticket.closed",
    }
)


Due = tuple[datetime | None, SlaMetric | None]


def customer_wrote_at(event: TicketOpened) -> datetime:
    """Where a new ticket's clocks start: when the customer wrote (the opening contact's
    received_at), not when the router opened the ticket: a contact received days ago, while
    the router was down or behind, has owed an answer since then. A received_at later than the
    opening (a skewed channel clock) counts from the opening."""
    if event.received_at is None:
        return event.opened_at
    return min(event.received_at, event.opened_at)


def attributes(row: TicketRow) -> TicketAttributes:
    return TicketAttributes(
        priority=row.priority,
        channel=row.channel,
        category=row.category,
        queue=row.queue_id,
        segment=row.segment,
    )


class TicketTracker:
    """The consumer's handler and the API's recompute share this."""

    def __init__(self, configs: ConfigCache, partitions: int) -> None:
        self.configs = configs
        self.partitions = partitions

    async def handle(self, conn: AsyncConnection, envelope: Envelope, payload: BaseModel) -> None:
        config = await self.configs.get(conn)
        ticket_id: uuid.UUID = payload.ticket_id  # type: ignore[attr-defined]
        row = await lock_ticket(conn, ticket_id)
        due_before: Due = (None, None)
        if isinstance(payload, TicketOpened):
            if row is not None:
                return  # already tracked: the router re-sent the opening with a new event id
            registered = await registered_segment(conn, payload.customer_id)
            row, ticket, changed = self._open(payload, config, registered)
            rescheduled = True
        else:
            if row is None:
                # Opened before this service tracked tickets (or its opening was dead-lettered).
                log.info("%s for untracked ticket %s ignored", envelope.event_type, ticket_id)
                return
            ticket = self._clocks(row, config)
            due_before = next_due(ticket)
            before = (row.policy_id, row.policy_version)
            changed = self._apply(row, ticket, payload, config)
            rescheduled = bool(changed) or before != (row.policy_id, row.policy_version)
        await self._save(conn, row, ticket, changed, config, rescheduled, envelope, due_before)

    async def move_to_version(
        self, conn: AsyncConnection, ticket_id: uuid.UUID, policy: SlaPolicy, at: datetime
    ) -> bool:
        """Re-target an open ticket's clocks to `policy` (a new version of its policy)."""
        config = await self.configs.get(conn)
        row = await lock_ticket(conn, ticket_id)
        if row is None or row.status != "open" or row.policy_id != policy.id:
            return False
        ticket = self._clocks(row, config)
        due_before = next_due(ticket)
        changed = ticket.retarget(
            policy.targets, config.calendar(policy.calendar_id), at, policy.warn_at_share
        )
        row.policy_version = policy.version
        await self._save(conn, row, ticket, changed, config, True, None, due_before)
        return True

    # --- internals ---------------------------------------------------------------------------

    def _clocks(self, row: TicketRow, config: SlaConfig) -> TicketClocks:
        return clocks_from_json(row.ticket_id, row.clocks, row.agent_replied, config.calendar)

    def _open(
        self, event: TicketOpened, config: SlaConfig, registered: str | None = None
    ) -> tuple[TicketRow, TicketClocks, list[SlaClock]]:
        """`registered`: the customer's segment in SLA's copy of the key-account registry."""
        row = TicketRow(
            ticket_id=event.ticket_id,
            priority=event.priority,
            channel=event.channel,
            category=event.category,
            queue_id=event.queue_id,
            segment=ticket_segment(event.segment, registered),
            policy_id=None,
            policy_version=None,
            status="open",
            agent_replied=False,
            clocks={},
            opened_at=event.opened_at,
        )
        policy = match_policy(config.latest_policies(), attributes(row))
        if policy is None:
            return row, TicketClocks(event.ticket_id, {}), []
        row.policy_id, row.policy_version = policy.id, policy.version
        ticket, started = TicketClocks.open(
            event.ticket_id,
            policy.targets,
            config.calendar(policy.calendar_id),
            customer_wrote_at(event),
            policy.warn_at_share,
        )
        return row, ticket, started

    def _apply(
        self, row: TicketRow, ticket: TicketClocks, event: BaseModel, config: SlaConfig
    ) -> list[SlaClock]:
        match event:
            case TicketContactAdded():
                return ticket.customer_message(event.received_at)
            case TicketReplied():
                return ticket.agent_reply(event.at)
            case TicketStatusChanged():
                return ticket.status_changed(event.from_status, event.to_status, event.at)
            case TicketRouted():
                row.priority, row.category = event.priority, event.category
                row.channel, row.queue_id = event.channel, event.queue_id
                if event.segment is not None and row.segment not in REGISTRY_SEGMENTS:
                    row.segment = event.segment  # not over the registry's segment
                return self._rematch(row, ticket, config, event.at)
            case TicketAssigned():
                row.queue_id = event.queue_id
                return self._rematch(row, ticket, config, event.at)
            case TicketTransferred():
                if event.to_queue_id is None:
                    return []
                row.queue_id = event.to_queue_id
                return self._rematch(row, ticket, config, event.at)
            case TicketResolved():
                row.status = "resolved"
                return ticket.resolved(event.resolved_at)
            case TicketReopened():
                row.status = "open"
                return ticket.reopened(event.at)
            case TicketClosed():
                row.status = "closed"
                return ticket.closed(event.at)
        return []

    def _rematch(
        self, row: TicketRow, ticket: TicketClocks, config: SlaConfig, at: datetime
    ) -> list[SlaClock]:
        """The ticket's queue or priority may have changed: the policy that now matches applies.
        The same policy keeps the version the ticket was matched with."""
        if row.status != "open":
            return []
        policy = match_policy(config.latest_policies(), attributes(row))
        if (policy.id if policy else None) == row.policy_id:
            return []
        row.policy_id = policy.id if policy else None
        row.policy_version = policy.version if policy else None
        if policy is None:
            return ticket.retarget({}, config.calendar("24x7"), at)
        calendar = config.calendar(policy.calendar_id)
        if not ticket.clocks:
            # Matched nothing when it opened: its clocks start now.
            opened, started = TicketClocks.open(
                row.ticket_id, policy.targets, calendar, at, policy.warn_at_share
            )
            ticket.clocks = opened.clocks
            return started
        return ticket.retarget(policy.targets, calendar, at, policy.warn_at_share)

    def _deadline_changed(self, row: TicketRow, due: Due, cause: Envelope | None) -> Envelope:
        """A clock started, paused, resumed, was re-targeted or met, and with it the ticket's
        next deadline moved (or its metric changed): the router orders waiting tickets by it."""
        return new_event(
            SlaDeadlineChanged(
                ticket_id=row.ticket_id,
                next_deadline=due[0],
                metric=due[1],
                version=row.deadline_version,
                at=datetime.now(UTC),
            ),
            producer=PRODUCER,
            correlation_id=cause.correlation_id if cause else None,
            causation_id=cause.event_id if cause else None,
        )

    async def _late_breach(
        self,
        conn: AsyncConnection,
        row: TicketRow,
        clock: SlaClock,
        policy: SlaPolicy,
        cause: Envelope | None,
    ) -> Envelope | None:
        """The sla.breached event of a clock that was fulfilled after its deadline but before its
        breach timer fired. Taking the pending timer row first makes this and the scanner
        exclusive: whichever holds the row publishes the breach, the other sees it fired."""
        assert clock.deadline is not None
        key = timer_key(row.ticket_id, clock.metric, clock.cycle, "breach", 0)
        await conn.execute(text("DELETE FROM sla_timers WHERE key = :k"), {"k": key})
        event = new_event(
            SlaBreached(
                ticket_id=row.ticket_id,
                metric=clock.metric,
                policy_id=policy.id,
                policy_version=policy.version,
                deadline=clock.deadline,
                at=clock.breached_at or clock.deadline,
            ),
            producer=PRODUCER,
            correlation_id=cause.correlation_id if cause else None,
            causation_id=cause.event_id if cause else None,
        )
        claimed = await conn.execute(
            text(
                "INSERT INTO fired_timers (key, ticket_id, kind, level, due_at, event_id) "
                "VALUES (:k, :t, 'breach', 0, :due, :e) ON CONFLICT DO NOTHING RETURNING key"
            ),
            {"k": key, "t": row.ticket_id, "due": clock.deadline, "e": event.event_id},
        )
        return event if claimed.first() is not None else None

    async def _save(
        self,
        conn: AsyncConnection,
        row: TicketRow,
        ticket: TicketClocks,
        changed: list[SlaClock],
        config: SlaConfig,
        rescheduled: bool,
        cause: Envelope | None,
        due_before: Due,
    ) -> None:
        row.clocks = clocks_to_json(ticket)
        row.agent_replied = ticket.agent_replied
        due = next_due(ticket)
        moved = due != due_before
        if moved:
            row.deadline_version += 1
        await save_ticket(conn, row, due[0])
        # Published after the clocks' own events (sla.met), in the same statement.
        deadline_event = [self._deadline_changed(row, due, cause)] if moved else []
        policy = config.policy(row.policy_id, row.policy_version)
        if rescheduled:
            shard = partition_for(str(row.ticket_id).encode(), self.partitions)
            await replace_timers(
                conn, row.ticket_id, timer_rows(ticket, policy, row.priority, shard)
            )
        if policy is None:
            await enqueue(conn, *deadline_event)
            return
        events: list[Envelope] = []
        outcomes = []
        for clock in changed:
            if clock.state != "fulfilled" or clock.timeline[-1].kind != "fulfilled":
                continue
            assert clock.fulfilled_at is not None
            assert clock.deadline is not None
            in_time = clock.breached_at is None
            outcomes.append(
                {
                    "ticket_id": row.ticket_id,
                    "metric": clock.metric,
                    "cycle": clock.cycle,
                    "outcome": "met" if in_time else "breached",
                    "deadline": clock.deadline,
                    "settled_at": clock.fulfilled_at if in_time else clock.breached_at,
                    "queue_id": row.queue_id,
                    "channel": row.channel,
                    "priority": row.priority,
                    "policy_id": policy.id,
                }
            )
            if not in_time:
                late = await self._late_breach(conn, row, clock, policy, cause)
                if late is not None:
                    events.append(late)
            if in_time:
                events.append(
                    new_event(
                        SlaMet(
                            ticket_id=row.ticket_id,
                            metric=clock.metric,
                            policy_id=policy.id,
                            policy_version=policy.version,
                            deadline=clock.deadline,
                            met_at=clock.fulfilled_at,
                        ),
                        producer=PRODUCER,
                        correlation_id=cause.correlation_id if cause else None,
                        causation_id=cause.event_id if cause else None,
                    )
                )
        await record_outcomes(conn, outcomes)
        await enqueue(conn, *events, *deadline_event)
