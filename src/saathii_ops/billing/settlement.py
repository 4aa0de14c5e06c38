"""Settlement (SPEC §5): ending an ongoing call and paying its listener.

The one place that ends calls. Its rules are SQL expressions the billing plan
computes for every call it ends (durations, the listener's rate, earnings),
and `settle`, which applies the plan's ending rows with guarded statements and
records each settlement in ops_settlements (at most one row per call, by its
primary key), in the same transaction.

Earnings are computed in whole paise (integers on both dialects: SQLite keeps
NUMERIC as floating point) and turned into rupees only where they are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.calls import SETTLED_CALL_STATUS
from saathii_ops.db.engine import database_now, is_sqlite
from saathii_ops.db.models import (
    ListenerBadge,
    Money,
    Rate,
    Settlement,
    UserCall,
    UserStatus,
    UserTransaction,
    UserWallet,
    UTCDateTime,
    table,
)
from saathii_ops.db.sql import local_date
from saathii_ops.errors import PlanChanged
from saathii_ops.settings import Settings

calls = table(UserCall)
wallets = table(UserWallet)
ledger = table(UserTransaction)
status = table(UserStatus)
badges = table(ListenerBadge)
settlements = table(Settlement)


def expect(what: str, changed: int, planned: int) -> None:
    if changed != planned:
        raise PlanChanged(f"{what}: {changed} rows changed, the plan expected {planned}")


# --- the limits of the app's columns (billing's plan skips a call that would pass one) --

INT_MAX = 2**31 - 1  # duration_seconds, duration_minutes: INT
# started minutes of the longest call whose duration_seconds an INT can hold
MAX_CALL_MINUTES = INT_MAX // 60 + 1
MONEY_MAX_PAISE = 10**12 - 1  # NUMERIC(12,2): withdrawable_money, money_change


# --- the rules, as SQL expressions over a call's columns ---------------------------


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

    def paise(rate: sa.ColumnElement[Decimal], default: Decimal) -> sa.ColumnElement[int]:
        badge_paise = sa.cast(sa.func.round(rate * 100), sa.BigInteger)
        return sa.func.coalesce(badge_paise, int(default * 100))

    return sa.case(
        (call_type == "audio", paise(badge.c.audio_rate_per_minute, basic.audio)),
        else_=paise(badge.c.video_rate_per_minute, basic.video),
    )


def paise(money: sa.ColumnElement[Decimal]) -> sa.ColumnElement[int]:
    """Rupees (NUMERIC(12,2)) as whole paise."""
    return sa.cast(sa.func.round(money * 100), sa.BigInteger)


def rupees(paise: sa.ColumnElement[int]) -> sa.ColumnElement[Decimal]:
    """Paise as NUMERIC(12,2) rupees: exact on PostgreSQL."""
    return sa.cast(paise / sa.literal_column("100.0", sa.Numeric()), Money)


def paise_to_decimal(paise: int) -> Decimal:
    return (Decimal(paise) / 100).quantize(Decimal("0.01"))


# --- applying a plan ---------------------------------------------------------------


LEDGER_COLUMNS = [
    "wallet_id",
    "coins_change",
    "money_change",
    "tx_type",
    "created_at",
    "updated_at",
]


def write_ledger_rows(
    session: Session,
    tx_type: str,
    now: datetime,
    source: sa.Select[Any],
    *,
    with_ids: bool = False,
) -> Sequence[sa.Row[Any]]:
    """One user_transactions row of `tx_type` per row of `source` (wallet_id, coins_change,
    money_change; after a leading transaction_id `with_ids`), INSERT … SELECT; returns
    each row's (coins_change, money_change)."""
    at = sa.literal(now, UTCDateTime())
    columns = ["transaction_id", *LEDGER_COLUMNS] if with_ids else LEDGER_COLUMNS
    insert = sa.insert(ledger).from_select(columns, source.add_columns(sa.literal(tx_type), at, at))
    return session.execute(insert.returning(ledger.c.coins_change, ledger.c.money_change)).all()


@dataclass
class Settled:
    """What `settle` wrote: the calls it ended and the 'earn' ledger rows."""

    calls_ended: int = 0
    earn_money: Decimal = Decimal("0.00")


def settle(
    session: Session, now: datetime, plan: sa.Table, chunk: sa.ColumnElement[bool], run_id: str
) -> Settled:
    """End the plan's calls marked `ends` within `chunk` and pay their listeners.

    The plan rows carry what the rules above computed for each call (after it
    was billed). Each step is one set-based statement; the UPDATE of the calls
    is guarded by status, so a call that is no longer ongoing is never settled.
    """
    ending = sa.and_(chunk, plan.c.ends.is_(True))
    planned = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count(sa.distinct(plan.c.listener_id)).filter(plan.c.earnings_paise > 0),
            sa.func.count().filter(plan.c.earnings_paise > 0),
        ).where(ending)
    ).one()
    if not planned[0]:
        return Settled()

    ended = session.execute(
        sa.update(calls)
        .where(
            calls.c.call_id == plan.c.call_id,
            ending,
            calls.c.status == "ongoing",
        )
        .values(
            status=SETTLED_CALL_STATUS,
            end_time=now,
            duration_seconds=plan.c.duration_seconds,
            duration_minutes=plan.c.duration_minutes,
            listener_money_earned=plan.c.earnings_paise // 100,
            updated_at=now,
        )
        .returning(calls.c.call_id)
    ).all()
    expect("calls ended", len(ended), planned[0])

    paid = sa.and_(ending, plan.c.earnings_paise > 0)
    session.execute(
        sa.insert(wallets).from_select(
            ["user_id", "balance_coins", "withdrawable_money", "created_at", "updated_at"],
            sa.select(
                plan.c.listener_id,
                sa.literal(0, sa.BigInteger),
                sa.literal(Decimal("0.00"), Money),
                sa.literal(now, UTCDateTime()),
                sa.literal(now, UTCDateTime()),
            )
            .where(paid, ~sa.exists().where(wallets.c.user_id == plan.c.listener_id))
            .distinct(),
        )
    )
    earned = (
        sa.select(plan.c.listener_id, sa.func.sum(plan.c.earnings_paise).label("paise"))
        .where(paid)
        .group_by(plan.c.listener_id)
        .subquery()
    )
    credited = session.execute(
        sa.update(wallets)
        .where(wallets.c.user_id == earned.c.listener_id)
        .values(
            withdrawable_money=sa.func.coalesce(wallets.c.withdrawable_money, 0)
            + rupees(earned.c.paise),
            updated_at=now,
        )
        .returning(wallets.c.wallet_id)
    ).all()
    expect("listener wallets credited", len(credited), planned[1])

    _number_earn_rows(session, plan, paid)
    earn_rows = write_ledger_rows(
        session,
        "earn",
        now,
        sa.select(
            plan.c.earn_transaction_id,
            wallets.c.wallet_id,
            sa.literal(0, sa.BigInteger),
            rupees(plan.c.earnings_paise),
        )
        .select_from(plan.join(wallets, wallets.c.user_id == plan.c.listener_id))
        .where(paid)
        .order_by(plan.c.call_id),
        with_ids=True,
    )
    expect("'earn' ledger rows written", len(earn_rows), planned[2])

    recorded = session.execute(
        sa.insert(settlements)
        .from_select(
            [
                "call_id",
                "run_uuid",
                "settled_at",
                "end_time",
                "duration_seconds",
                "duration_minutes",
                "coins_spent",
                "listener_money_earned",
                "paid_minutes",
                "rate_per_minute",
                "earnings",
                "listener_wallet_id",
                "earn_transaction_id",
            ],
            sa.select(
                plan.c.call_id,
                sa.literal(run_id, sa.String(32)),
                sa.literal(database_now(session), UTCDateTime()),
                sa.literal(now, UTCDateTime()),
                plan.c.duration_seconds,
                plan.c.duration_minutes,
                plan.c.coins_spent + plan.c.charge,
                plan.c.earnings_paise // 100,
                plan.c.paid_minutes,
                sa.cast(rupees(plan.c.rate_paise), Rate),
                rupees(plan.c.earnings_paise),
                wallets.c.wallet_id,
                plan.c.earn_transaction_id,
            )
            .select_from(
                plan.outerjoin(
                    wallets,
                    sa.and_(wallets.c.user_id == plan.c.listener_id, plan.c.earnings_paise > 0),
                )
            )
            .where(ending),
        )
        .returning(settlements.c.call_id)
    ).all()
    expect("settlements recorded", len(recorded), planned[0])

    parties = sa.union(
        sa.select(plan.c.caller_id).where(ending), sa.select(plan.c.listener_id).where(ending)
    )
    # PostgreSQL: both parties' rows locked in user_id order before any is changed, so that
    # an app statement updating several user_status rows cannot deadlock with this one
    locked = (
        sa.select(status.c.user_id)
        .where(status.c.user_id.in_(parties))
        .order_by(status.c.user_id)
        .with_for_update()
        .correlate(None)
    )
    session.execute(
        sa.update(status)
        .where(status.c.user_id.in_(locked))
        .values(is_busy=False, wait_time=None, updated_at=now)
    )
    return Settled(
        calls_ended=len(ended),
        earn_money=sum((Decimal(row.money_change) for row in earn_rows), Decimal("0.00")),
    )


def _number_earn_rows(session: Session, plan: sa.Table, paid: sa.ColumnElement[bool]) -> None:
    """Give each 'earn' row to write its transaction_id beforehand, so that the settlement
    record names it: PostgreSQL draws them from the column's own sequence (the app
    inserts concurrently); SQLite holds the database's write lock, so max + n is free."""
    if not is_sqlite(session):
        sequence = sa.func.pg_get_serial_sequence("user_transactions", "transaction_id")
        session.execute(
            sa.update(plan).where(paid).values(earn_transaction_id=sa.func.nextval(sequence))
        )
        return
    numbered = (
        sa.select(plan.c.call_id, sa.func.row_number().over(order_by=plan.c.call_id).label("n"))
        .where(paid)
        .subquery()
    )
    last = sa.select(sa.func.coalesce(sa.func.max(ledger.c.transaction_id), 0)).scalar_subquery()
    session.execute(
        sa.update(plan)
        .where(plan.c.call_id == numbered.c.call_id)
        .values(earn_transaction_id=last + numbered.c.n)
    )
