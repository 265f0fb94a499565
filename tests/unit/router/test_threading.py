from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ccshared.events.payloads import Channel, TicketStatus
from router.domain.threading import (
    ContactThread,
    OpenTicketCandidate,
    decide_thread,
    email_key,
    lookup_keys,
    thread_keys,
)

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
CUSTOMER = "cust-1"


def email_reply(**overrides: object) -> ContactThread:
    fields: dict[str, object] = {
        "channel": "email",
        "customer_id": CUSTOMER,
        "received_at": NOW,
        "email_message_id": "<m3@mail.example>",
        "email_in_reply_to": "<m2@cc.example>",
        "email_references": ("<m1@mail.example>", "<m2@cc.example>"),
    }
    fields.update(overrides)
    return ContactThread(**fields)  # type: ignore[arg-type]


def candidate(
    ticket_id: str,
    *,
    keys: frozenset[str] = frozenset(),
    status: TicketStatus = "in_progress",
    customer_id: str = CUSTOMER,
    channel: Channel = "email",
    last_contact_ago: timedelta = timedelta(hours=1),
) -> OpenTicketCandidate:
    return OpenTicketCandidate(
        ticket_id, customer_id, channel, status, NOW - last_contact_ago, keys
    )


# --- keys ------------------------------------------------------------------------------------


def test_email_is_findable_by_its_own_message_id_without_angle_brackets() -> None:
    assert thread_keys(email_reply()) == ["email:m3@mail.example"]


def test_email_looks_up_in_reply_to_then_references_newest_first_without_duplicates() -> None:
    assert lookup_keys(email_reply()) == ["email:m2@cc.example", "email:m1@mail.example"]


def test_email_key_helper_matches_keys_of_agent_replies_sent_without_brackets() -> None:
    assert email_key(" <m2@cc.example> ") == email_key("m2@cc.example") == "email:m2@cc.example"


def test_chat_session_is_both_stored_and_looked_up() -> None:
    chat = ContactThread("chat", CUSTOMER, NOW, chat_session_id="s-42")
    assert thread_keys(chat) == ["chat:s-42"]
    assert lookup_keys(chat) == ["chat:s-42"]


def test_social_comment_is_stored_by_its_post_and_looked_up_by_its_parent() -> None:
    comment = ContactThread(
        "social", CUSTOMER, NOW, social_platform="Weibo", social_post_id="p2",
        social_parent_post_id="p1",
    )  # fmt: skip
    assert thread_keys(comment) == ["social:weibo:p2"]
    assert lookup_keys(comment) == ["social:weibo:p1"]


def test_contact_without_references_has_no_lookup_keys() -> None:
    call = ContactThread("phone", CUSTOMER, NOW)
    assert thread_keys(call) == []
    assert lookup_keys(call) == []
    assert lookup_keys(email_reply(email_in_reply_to=None, email_references=())) == []


def test_empty_message_ids_make_no_keys() -> None:
    assert thread_keys(email_reply(email_message_id="<>")) == []
    assert lookup_keys(email_reply(email_in_reply_to=" ", email_references=("<>",))) == []


# --- decisions --------------------------------------------------------------------------------


def test_reply_joins_the_open_ticket_its_references_point_at() -> None:
    decision = decide_thread(
        email_reply(), [candidate("t1", keys=frozenset({"email:m1@mail.example"}))]
    )
    assert (decision.action, decision.ticket_id) == ("join", "t1")
    assert decision.matched_key == "email:m1@mail.example"
    assert decision.reason == "replies in thread email:m1@mail.example"


def test_most_specific_reference_wins_over_an_older_one() -> None:
    older = candidate(
        "t-old", keys=frozenset({"email:m1@mail.example"}), last_contact_ago=timedelta(0)
    )
    direct = candidate(
        "t-direct", keys=frozenset({"email:m2@cc.example"}), last_contact_ago=timedelta(days=3)
    )
    assert decide_thread(email_reply(), [older, direct]).ticket_id == "t-direct"


def test_reply_to_a_resolved_ticket_reopens_it() -> None:
    decision = decide_thread(
        email_reply(), [candidate("t1", keys=frozenset({"email:m2@cc.example"}), status="resolved")]
    )
    assert (decision.action, decision.ticket_id) == ("reopen", "t1")


def test_reply_to_a_closed_ticket_opens_a_follow_up() -> None:
    decision = decide_thread(
        email_reply(), [candidate("t1", keys=frozenset({"email:m2@cc.example"}), status="closed")]
    )
    assert (decision.action, decision.ticket_id, decision.follow_up_of) == ("open_new", None, "t1")


def test_reference_to_another_customers_ticket_is_not_joined() -> None:
    foreign = candidate("t1", keys=frozenset({"email:m2@cc.example"}), customer_id="cust-2")
    decision = decide_thread(email_reply(), [foreign])
    assert (decision.action, decision.ticket_id) == ("open_new", None)


def test_same_customer_same_channel_open_ticket_within_window_is_joined() -> None:
    call = ContactThread("phone", CUSTOMER, NOW)
    recent = candidate("t1", channel="phone", last_contact_ago=timedelta(hours=3))
    decision = decide_thread(call, [recent])
    assert (decision.action, decision.ticket_id, decision.matched_key) == ("join", "t1", None)
    assert decision.reason.startswith("same customer's open phone ticket")


def test_window_fallback_picks_the_most_recently_contacted_ticket() -> None:
    call = ContactThread("phone", CUSTOMER, NOW)
    tickets = [
        candidate("t-old", channel="phone", last_contact_ago=timedelta(hours=5)),
        candidate("t-new", channel="phone", last_contact_ago=timedelta(hours=1)),
    ]
    assert decide_thread(call, tickets).ticket_id == "t-new"


def test_window_fallback_ignores_old_other_channel_other_customer_and_finished_tickets() -> None:
    call = ContactThread("phone", CUSTOMER, NOW)
    tickets = [
        candidate("too-old", channel="phone", last_contact_ago=timedelta(hours=25)),
        candidate("by-email", channel="email"),
        candidate("someone-else", channel="phone", customer_id="cust-2"),
        candidate("resolved", channel="phone", status="resolved"),
    ]
    assert decide_thread(call, tickets).action == "open_new"


def test_window_is_configurable_per_channel() -> None:
    chat = ContactThread("chat", CUSTOMER, NOW, chat_session_id="new-session")
    earlier = candidate("t1", channel="chat", last_contact_ago=timedelta(minutes=30))
    assert decide_thread(chat, [earlier]).action == "join"
    assert decide_thread(chat, [earlier], {"chat": timedelta(minutes=10)}).action == "open_new"
    assert decide_thread(chat, [earlier], {}).action == "open_new"


def test_nothing_to_join_opens_a_new_ticket() -> None:
    decision = decide_thread(email_reply(), [])
    assert (decision.action, decision.ticket_id, decision.follow_up_of) == ("open_new", None, None)
