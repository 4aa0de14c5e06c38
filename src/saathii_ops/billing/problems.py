"""The kinds of ongoing calls billing cannot bill: skipped, never changed, named in the
report (docs/decisions.md#billing)."""

from __future__ import annotations

from enum import StrEnum


class Problem(StrEnum):
    """Why a call cannot be billed; each kind carries the text operators see.

    The value is what the plan's CASE writes (at most 40 characters: the plan's column).
    """

    description: str

    # (after the class is made, `Problem(value)` looks a member up by its value: the
    # default only lets the type checker see that call)
    def __new__(cls, value: str, description: str = "") -> Problem:
        member = str.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    HALF_ENDED = "half_ended", "end_time is set: half-ended by the app"
    SETTLED_BEFORE = "settled_before", "settled by saathii-ops before (the app changed it since)"
    UNKNOWN_CALL_TYPE = "unknown_call_type", "unknown call_type"
    NEGATIVE_COINS_SPENT = "negative_coins_spent", "coins_spent is negative"
    NO_LISTENER = "no_listener", "no listener_id"
    START_TIME_OUT_OF_RANGE = (
        "start_time_out_of_range",
        "start_time is so long ago that duration_seconds would overflow INT",
    )
    START_TIME_NOT_FINITE = "start_time_not_finite", "start_time is not a finite time"
    COINS_SPENT_OUT_OF_RANGE = (
        "coins_spent_out_of_range",
        "coins_spent pays for more minutes than any call can last",
    )
    BAD_BADGE_RATE = (
        "bad_badge_rate",
        "the listener's listener_badges row has a negative or absurd rate",
    )
    EARNINGS_OUT_OF_RANGE = (
        "earnings_out_of_range",
        "the listener's earnings would overflow NUMERIC(12,2)",
    )
    LISTENER_WALLET_OVERFLOW = (
        "listener_wallet_overflow",
        "the listener's withdrawable_money would overflow NUMERIC(12,2)",
    )

    def of_call(self, call_type: str | None, listener_id: int | None) -> str:
        """What the report says of one skipped call: the description, and for a bad
        call_type or badge rate which one."""
        if self is Problem.UNKNOWN_CALL_TYPE:
            return f"{self.description} {call_type!r}"
        if self is Problem.BAD_BADGE_RATE:
            return f"{self.description} for {call_type} calls (listener {listener_id})"
        return self.description
