"""Urgency beyond a keyword: what makes a ticket urgent whatever its category, each found
signal a named reason with the words that showed it. Priority is the model's (or the rules')
raised to each signal's floor.

- scope: a whole shop, floor, team, every till or all customers cannot work (a scope word
  and a failure word both present) → urgent;
- safety: smoke, burning, sparks, fire, gas, electric shock → urgent;
- legal: a lawyer, court, regulator or consumer body named → at least high;
- repeated: the customer says this is the third time, or that they asked before → at least
  high; and, from the contact history (`repeated_from_history`), the customer has another
  ticket of the same category still open, or resolved within `REPEAT_WINDOW` → at least high.

Chinese keywords are listed in both scripts (matching is on the text as written, no
conversion); Latin ones match as whole words (`KeywordMatcher`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from ccshared.events.payloads import Priority
from router.domain.expressions import KeywordMatcher


@dataclass(frozen=True, slots=True)
class Signal:
    """A found signal: its kind, the priority it asks for at least, and why."""

    kind: str
    floor: Priority
    reason: str


_SAFETY = KeywordMatcher.of((
    "smoke", "smoking", "smoked", "burning smell", "smells burnt", "smell burnt", "burnt smell",
    "burning", "scorched", "sparking", "sparked", "sparks", "caught fire", "on fire",
    "nearly caught fire", "melted", "gas leak", "smell of gas", "smells of gas", "gas smell",
    "electric shock", "got a shock", "shocked me", "tingling",
    "冒烟", "冒煙", "烧焦", "燒焦", "焦味", "漏电", "漏電", "煤气", "煤氣", "瓦斯味", "燃气味",
    "燃氣味", "起火", "着火", "著火", "火花", "冒火", "触电", "觸電", "电到", "電到", "烧黑",
    "燒黑", "黑烟", "黑煙",
))  # fmt: skip
_SCOPE = KeywordMatcher.of((
    "all our", "all of our", "all stores", "all branches", "all tills", "all terminals",
    "every store", "every till", "every branch", "every terminal", "every pos", "every account",
    "whole store", "whole shop", "whole office", "whole team", "whole floor", "whole building",
    "entire store", "entire team", "entire office", "entire building", "office floor",
    "none of our", "none of the", "nobody can", "no one can", "no customer can",
    "all customers", "every customer", "store is at a standstill", "whole call centre",
    "全部门店", "所有门店", "全部分店", "所有分店", "整个门店", "整个店", "整个团队", "整个部门",
    "整层", "整栋", "所有员工", "所有顾客", "所有客户", "全部收银", "所有收银", "全部的",
    "全部門市", "所有門市", "整間店", "整個門市", "整個團隊", "整個部門", "整層", "整棟",
    "所有員工", "所有客人", "所有顧客", "全部收銀", "所有收銀", "全部都", "所有的",
    "全部", "所有", "都不能", "都用不了", "都登不",
))  # fmt: skip
_FAILURE = KeywordMatcher.of((
    "down", "offline", "not working", "won't", "wont", "can't", "cant", "cannot", "unable",
    "dead", "froze", "frozen", "crashed", "outage", "no power", "lost internet", "standstill",
    "打不开", "登不上", "进不去", "用不了", "无法", "不能", "没法", "不了", "断网", "宕机", "崩了",
    "瘫痪", "离线", "停了", "打不開", "登不進", "進不去", "無法", "不能", "沒辦法", "當機",
    "斷網", "離線", "連不上", "刷不",
))  # fmt: skip
_LEGAL = KeywordMatcher.of((
    "lawyer", "solicitor", "sue", "suing", "court", "legal action", "small claims",
    "regulator", "ombudsman", "trading standards", "citizens advice", "attorney",
    "律师", "律師", "起诉", "起訴", "法院", "法庭", "消协", "消協", "消费者协会", "12315",
    "市场监管", "消保官", "消基會", "法律途径", "法律途徑", "告你們", "告你们",
))  # fmt: skip
_REPEATED = KeywordMatcher.of((
    "third time", "3rd time", "fourth time", "4th time", "fifth time", "fifth call",
    "third call", "third email", "asking again", "asked again", "again and again",
    "every single time", "several times", "times already", "chased", "reported this",
    "第三次", "第四次", "第五次", "第n次", "又一次", "好几次", "好幾次", "多次", "两次了",
    "三次了", "兩次了", "一再", "反复", "反覆", "再问一次", "再問一次",
))  # fmt: skip

REPEAT_WINDOW: Final = timedelta(days=7)
"""A ticket resolved this recently, of the same category, makes a new contact a repeated one."""

_URGENT: Final[Priority] = "urgent"
_HIGH: Final[Priority] = "high"


def signals(text: str) -> tuple[Signal, ...]:
    """Every signal the text shows, in a fixed order (safety, scope, legal, repeated)."""
    found: list[Signal] = []
    if word := _SAFETY.first_match(text):
        found.append(Signal("safety", _URGENT, f"safety: text mentions {word!r}"))
    if (scope := _SCOPE.first_match(text)) and (fails := _FAILURE.first_match(text)):
        found.append(Signal("scope", _URGENT, f"scope: {scope!r} with {fails!r}: many cannot work"))
    if word := _LEGAL.first_match(text):
        found.append(Signal("legal", _HIGH, f"legal or regulator threat: {word!r}"))
    if word := _REPEATED.first_match(text):
        found.append(Signal("repeated", _HIGH, f"repeated contact: {word!r}"))
    return tuple(found)


def most_urgent(priorities: Sequence[Priority]) -> Priority:
    order: tuple[Priority, ...] = ("urgent", "high", "normal", "low")
    return min(priorities, key=order.index)


@dataclass(frozen=True, slots=True)
class EarlierTicket:
    """One of the customer's tickets as the router knows it when a new one opens."""

    ticket_id: str
    category: str
    status: str
    opened_at: datetime
    resolved_at: datetime | None = None


def repeated_from_history(
    category: str,
    earlier: Sequence[EarlierTicket],
    now: datetime,
    window: timedelta = REPEAT_WINDOW,
) -> Signal | None:
    """A repeated contact shown by the history, not the text: another ticket of the same
    `category` still open (the problem is not solved and the customer comes back), or
    resolved (or closed) within `window` before `now` (it came back). The most recent such
    ticket is named in the reason."""
    for t in sorted(earlier, key=lambda t: t.opened_at, reverse=True):
        if t.category != category:
            continue
        if t.status not in ("resolved", "closed"):
            return Signal(
                "repeated",
                _HIGH,
                f"repeated contact: ticket {t.ticket_id[:8]} ({category}), opened "
                f"{_ago(now - t.opened_at)}, is still open",
            )
        if t.resolved_at is not None and timedelta(0) <= now - t.resolved_at <= window:
            return Signal(
                "repeated",
                _HIGH,
                f"repeated contact: ticket {t.ticket_id[:8]} ({category}) was resolved "
                f"{_ago(now - t.resolved_at)}",
            )
    return None


def _ago(delta: timedelta) -> str:
    if delta >= timedelta(days=1):
        return f"{delta.days} day{'s' if delta.days != 1 else ''} ago"
    hours = int(delta.total_seconds() // 3600)
    return f"{hours} h ago" if hours else "less than an hour ago"
