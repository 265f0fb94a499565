"""Notifications by e-mail: the router's notification.email_requested (a supervisor who opted
in) reaches a real SMTP server (deploy/local/mailbox.py) once, from the platform's address, to
the address in the request, threaded on nothing."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from ccshared.events.payloads import NotificationEmailRequested
from deploy.local.mailbox import Mailbox
from tests.helpers import wait_until
from tests.integration.intake.conftest import Intake, publish_outbound


async def test_a_notification_email_reaches_the_mailbox_once_unthreaded(
    intake_factory: Callable[..., Awaitable[Intake]], mailbox: Mailbox, kafka_bootstrap: str
) -> None:
    intake = await intake_factory(
        smtp_port=mailbox.address[1], mail_from="Contact Center <cc@example.com>"
    )
    ticket_id = uuid.uuid4()
    about_a_ticket = NotificationEmailRequested(
        notification_id=uuid.uuid4(),
        recipient_id="lin",
        to="lin@cc.example",
        subject="升级 Escalated: ticket 0A1B2C3D",
        text="工单 0A1B2C3D 已升级。Ticket 0A1B2C3D was escalated (resolution, level 1).",
        ticket_id=ticket_id,
        created_at=datetime.now(UTC),
    )
    about_nothing = NotificationEmailRequested(
        notification_id=uuid.uuid4(),
        recipient_id="mo",
        to="Mo <mo@cc.example>",
        subject="Hello",
        text="A notification about no ticket.",
        created_at=datetime.now(UTC),
    )
    await publish_outbound(kafka_bootstrap, about_a_ticket, about_nothing, times=2)

    async def both_sent() -> Any:
        rows = await intake.db.fetch(
            "SELECT id, ticket_id, customer_id, channel, kind, state, attempts, target "
            "FROM outbound_messages WHERE state = 'sent' ORDER BY target"
        )
        return rows if len(rows) == 2 else None

    rows = await wait_until(both_sent, timeout=30)
    assert [dict(r) for r in rows] == [
        {
            "id": about_a_ticket.notification_id,
            "ticket_id": ticket_id,
            "customer_id": None,
            "channel": "email",
            "kind": "notification",
            "state": "sent",
            "attempts": 1,
            "target": "lin@cc.example",
        },
        {
            "id": about_nothing.notification_id,
            "ticket_id": None,
            "customer_id": None,
            "channel": "email",
            "kind": "notification",
            "state": "sent",
            "attempts": 1,
            "target": "mo@cc.example",
        },
    ]
    mails = {m["X-Mailbox-To"]: m for m in mailbox.messages()}
    assert sorted(mails) == ["lin@cc.example", "mo@cc.example"]  # redelivered: sent once
    lin = mails["lin@cc.example"]
    assert lin["Subject"] == "升级 Escalated: ticket 0A1B2C3D"
    assert lin["From"].addresses[0].addr_spec == "cc@example.com"
    assert lin["To"].addresses[0].addr_spec == "lin@cc.example"
    assert lin["Message-ID"] == f"<{about_a_ticket.notification_id}@example.com>"
    assert lin["In-Reply-To"] is None
    assert lin["References"] is None
    assert lin.get_content().strip() == about_a_ticket.text
    assert mails["mo@cc.example"]["To"].addresses[0].display_name == "Mo"
