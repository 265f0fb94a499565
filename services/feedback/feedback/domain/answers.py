"""What an answer means: detractor (follow-up), praise (recorded for the agent), and whether an
answer may still be changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

CSAT_RANGE = range(1, 6)
NPS_RANGE = range(0, 11)
DETRACTOR_CSAT_MAX = 2
DETRACTOR_NPS_MAX = 6


class InvalidAnswer(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Answer:
    csat: int | None
    nps: int | None
    solved_first_contact: bool | None
    comment: str | None

    def __post_init__(self) -> None:
        if self.csat is not None and self.csat not in CSAT_RANGE:
            raise InvalidAnswer("csat", "must be between 1 and 5")
        if self.nps is not None and self.nps not in NPS_RANGE:
            raise InvalidAnswer("nps", "must be between 0 and 10")
        if self.csat is None and self.nps is None and self.solved_first_contact is None:
            raise InvalidAnswer("csat", "answer at least one question")

    @property
    def has_comment(self) -> bool:
        return bool(self.comment and self.comment.strip())


def is_detractor(answer: Answer) -> bool:
    """Low CSAT, low NPS or not solved: someone should call the customer back."""
    return (
        (answer.csat is not None and answer.csat <= DETRACTOR_CSAT_MAX)
        or (answer.nps is not None and answer.nps <= DETRACTOR_NPS_MAX)
        or answer.solved_first_contact is False
    )


def is_praise(answer: Answer) -> bool:
    """Top scores with a comment; a missing score is not a top score."""
    return answer.csat == 5 and answer.nps is not None and answer.nps >= 9 and answer.has_comment


def may_update(first_answered_at: datetime, now: datetime, window: timedelta) -> bool:
    return now - first_answered_at <= window
