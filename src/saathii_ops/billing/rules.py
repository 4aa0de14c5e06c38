"""The rules of SPEC §4 (what a call owes, what a balance pays) and §5 (a settled call's
duration and earnings), as SQL expressions over a call's columns, and the limits of the
app's columns that the plan checks before computing anything that could pass them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, overload

import sqlalchemy as sa

from saathii_ops.billing.money import paise_of, rupees_to_paise
from saathii_ops.db.sql import local_date
from saathii_ops.settings import Settings

INT_MAX = 2**31 - 1  # duration_seconds, duration_minutes: INT
# started minutes of the longest call whose duration_seconds an INT can hold
MAX_CALL_MINUTES = INT_MAX // 60 + 1

# A badge rate above this many times the highest rate our badge table pays is absurd.
ABSURD_RATE_FACTOR = 10


# --- coin deduction (SPEC §4) ----------------------------------------------------


def coin_rate(call_type: sa.ColumnElement[str | None], settings: Settings) -> sa.ColumnElement[int]:
    """r, coins per minute; NULL for an unknown call_type."""
    rates = settings.coins_per_minute
    return sa.case((call_type == "audio", rates.audio), (call_type == "video", rates.video))


def coins_due(rate: sa.ColumnElement[int], elapsed: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """r * (⌊e / 60⌋ + 1), every started minute; nothing before the call starts.

    (For e < 0 the SPEC's formula gives at most 0; `//` truncates, so e < 0 is
    handled apart.)
    """
    return sa.case((elapsed < 0, 0), else_=rate * (elapsed // 60 + 1))


@overload
def affordable_charge(owed: int, spent: int, rate: int, available: int) -> int: ...


@overload
def affordable_charge(
    owed: sa.ColumnElement[int],
    spent: sa.ColumnElement[int],
    rate: sa.ColumnElement[int],
    available: sa.ColumnElement[int],
) -> sa.ColumnElement[int]: ...


def affordable_charge(owed: Any, spent: Any, rate: Any, available: Any) -> Any:
    """What to charge a call that owes `owed` from a balance of `available` (≥ 0): all it
    owes when the balance covers it, else the whole minutes the balance pays, else nothing.

    One rule, two forms: over SQL columns (the plan) or over ints (evaluated in Python;
    tests/unit checks the rule by hand). Every operand is ≥ 0 and rate > 0, where SQL's
    truncating division and Python's floor division agree.
    """
    whole_minutes = rate * ((spent + available) // rate) - spent  # < owed when available < owed
    choices = ((owed <= 0, 0), (available >= owed, owed), (whole_minutes > 0, whole_minutes))
    if isinstance(owed, int):
        return next((charge for holds, charge in choices if holds), 0)
    return sa.cast(sa.case(*choices, else_=0), sa.BigInteger)


# --- settlement (SPEC §5) --------------------------------------------------------


def duration_seconds(elapsed: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """max(0, e)"""
    return sa.case((elapsed > 0, elapsed), else_=0)


def duration_minutes(elapsed: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """max(1, ⌊e / 60⌋); `//` only on non-negative values, where truncation is floor."""
    return sa.case((elapsed >= 60, elapsed // 60), else_=1)


def paid_minutes(
    coins_spent: sa.ColumnElement[int], rate: sa.ColumnElement[int]
) -> sa.ColumnElement[int]:
    """p = ⌊coins_spent / r⌋ (coins_spent is never negative here: such calls are skipped)."""
    return coins_spent // rate


def listener_badge_join(
    badge: sa.FromClause,
    listener_id: sa.ColumnElement[int],
    start_time: sa.ColumnElement[datetime],
    settings: Settings,
) -> sa.ColumnElement[bool]:
    """The listener's badge row for the business date of the call's start."""
    return sa.and_(
        badge.c.listener_id == listener_id,
        badge.c.date == local_date(start_time, settings.timezone),
    )


def listener_rate_paise(
    badge: sa.FromClause, call_type: sa.ColumnElement[str | None], settings: Settings
) -> sa.ColumnElement[int]:
    """The listener's rate in paise per minute, by call type; basic rates without a badge row."""
    basic = settings.badge_rates.basic

    def rate(badge_rate: sa.ColumnElement[Decimal], default: Decimal) -> sa.ColumnElement[int]:
        return sa.func.coalesce(paise_of(badge_rate), rupees_to_paise(default))

    return sa.case(
        (call_type == "audio", rate(badge.c.audio_rate_per_minute, basic.audio)),
        else_=rate(badge.c.video_rate_per_minute, basic.video),
    )


def absurd_rate_paise(
    call_type: sa.ColumnElement[str | None], settings: Settings
) -> sa.ColumnElement[int]:
    """Paise per minute above which a listener_badges rate is absurd, by call type."""
    table = settings.badge_rates
    tiers = (table.basic, table.bronze, table.silver, table.gold)
    audio = rupees_to_paise(max(tier.audio for tier in tiers)) * ABSURD_RATE_FACTOR
    video = rupees_to_paise(max(tier.video for tier in tiers)) * ABSURD_RATE_FACTOR
    return sa.case((call_type == "audio", audio), else_=video)
