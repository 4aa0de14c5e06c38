"""What `wallets audit` (SPEC §13) finds, one set-based query each (the list is in
jobs/wallet_audit.py, which builds the report from them); `wallets reconcile` reads the
same queries for the findings it corrects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.billing.charge import BILLING_GRACE
from saathii_ops.billing.money import rupees_read
from saathii_ops.billing.rules import coin_rate, coins_due
from saathii_ops.db.calls import SETTLED_CALL_STATUS, CallStatus
from saathii_ops.db.sql import elapsed_seconds
from saathii_ops.db.tables import listener_badges as badges
from saathii_ops.db.tables import ops_corrections as corrections
from saathii_ops.db.tables import ops_half_ended_calls as observed
from saathii_ops.db.tables import ops_settlements as settlements
from saathii_ops.db.tables import user_calls as calls
from saathii_ops.db.tables import user_transactions as ledger
from saathii_ops.db.tables import user_wallets as wallets
from saathii_ops.jobs import half_ended
from saathii_ops.jobs.badges import one_row_each
from saathii_ops.settings import Settings

# The ledger rows that move withdrawable_money (rupees). The app's 'purchase' rows
# carry in money_change the rupees the customer paid for the coins: not wallet money.
MONEY_TX_TYPES = ("earn", "withdraw")
ENDED_AGAIN = "ended again after settlement — the listener may have been paid twice"
DUPLICATE_BADGE = (
    "several listener_badges rows for one listener and day (the table lacks its key): "
    "the jobs read this one; delete the others"
)
ENDED_AGAIN_AFTER_HALF_END = (
    "ended again by the app after it half-ended it: the listener may have been paid twice"
)

# The findings `wallets reconcile` corrects, as ops_corrections.finding names them.
ERASED_DEBIT = "erased_debit"  # a wallet holding more coins than its ledger
PAID_TWICE_AFTER_SETTLEMENT = "ended_again_after_settlement"
PAID_TWICE_AFTER_HALF_END = "ended_again_after_half_end"
HALF_ENDED = "half_ended"
COMPLETED = "completed"  # the action that completes a half-ended call


@dataclass
class WalletDrift:
    wallet_id: int
    user_id: int | None
    balance_coins: int
    ledger_coins: int
    # coins of erased debits `wallets reconcile` could not collect: the wallet keeps them
    written_off_coins: int
    coins_difference: int  # balance - ledger - written off (> 0: a debit was lost)
    withdrawable_money: Decimal
    ledger_money: Decimal
    money_difference: Decimal


@dataclass
class CallDrift:
    call_id: int
    call_type: str
    coins_spent: int
    coins_due_now: int
    coins_due_by_now: int  # what billing must have charged by now - grace
    drift: str  # overcharged | undercharged


@dataclass
class HalfEndedCall:
    """An ongoing call with an end_time: the app's end-call with the reason 'ongoing'."""

    call_id: int
    caller_id: int | None
    listener_id: int | None
    end_time: datetime
    coins_spent: int
    listener_money_earned: int | None


@dataclass
class ChangedAfterSettlement:
    """A call we settled, as we settled it and as it is now."""

    call_id: int
    finding: str
    run_uuid: str
    settled_at: datetime
    earnings: Decimal  # what we paid the listener, in rupees
    settled_status: str
    status_now: str | None
    settled_end_time: datetime
    end_time_now: datetime | None
    settled_coins_spent: int
    coins_spent_now: int | None
    settled_listener_money_earned: int
    listener_money_earned_now: int | None


@dataclass
class DuplicateBadge:
    """Several listener_badges rows for one listener and day; the jobs read `badge`'s."""

    listener_id: int
    date: date
    rows: int
    badge: str | None  # of the row the jobs read
    audio_rate_per_minute: Decimal
    video_rate_per_minute: Decimal
    finding: str = DUPLICATE_BADGE


@dataclass
class EndedAgainAfterHalfEnd:
    """A half-ended call as saathii-ops first saw it, and as it is now."""

    call_id: int
    finding: str
    caller_id: int | None
    listener_id: int | None
    seen_at: datetime
    seen_status: str  # 'ongoing', or 'completed' when `wallets reconcile` completed it
    status_now: str | None
    seen_end_time: datetime
    end_time_now: datetime | None
    seen_coins_spent: int
    coins_spent_now: int | None
    seen_listener_money_earned: int | None
    listener_money_earned_now: int | None


def _resolved(finding: str, call: sa.ColumnElement[int]) -> sa.Exists:
    """`wallets reconcile --apply` resolved this finding of the call."""
    return sa.exists().where(corrections.c.call_id == call, corrections.c.finding == finding)


def _ledger_totals() -> sa.Subquery:
    """Each wallet's Σ coins_change, and Σ money_change of its rows that move money."""
    money_row = ledger.c.tx_type.in_(MONEY_TX_TYPES)
    return (
        sa.select(
            ledger.c.wallet_id,
            sa.func.sum(sa.func.coalesce(ledger.c.coins_change, 0)).label("coins"),
            sa.func.sum(
                sa.case((money_row, sa.func.coalesce(ledger.c.money_change, 0)), else_=0)
            ).label("money"),
        )
        .group_by(ledger.c.wallet_id)
        .subquery("totals")
    )


def _written_off() -> sa.Subquery:
    """Each wallet's coins of erased debits `wallets reconcile` could not collect."""
    return (
        sa.select(
            corrections.c.wallet_id,
            sa.func.sum(corrections.c.uncollectable_coins).label("coins"),
        )
        .where(corrections.c.finding == ERASED_DEBIT)
        .group_by(corrections.c.wallet_id)
        .subquery("written_off")
    )


def wallet_drift(session: Session, wallet_ids: list[int] | None = None) -> list[WalletDrift]:
    """Wallets off their ledger (of `wallet_ids`, when given)."""
    totals = _ledger_totals()
    written_off = _written_off()
    balance = sa.func.coalesce(wallets.c.balance_coins, 0)
    money = sa.func.coalesce(wallets.c.withdrawable_money, 0)
    ledger_coins = sa.func.coalesce(totals.c.coins, 0)
    written_off_coins = sa.func.coalesce(written_off.c.coins, 0)
    ledger_money = sa.func.coalesce(totals.c.money, 0)
    query = (
        sa.select(
            wallets.c.wallet_id,
            wallets.c.user_id,
            balance.label("balance_coins"),
            ledger_coins.label("ledger_coins"),
            written_off_coins.label("written_off_coins"),
            money.label("withdrawable_money"),
            ledger_money.label("ledger_money"),
        )
        .select_from(
            wallets.outerjoin(totals, totals.c.wallet_id == wallets.c.wallet_id).outerjoin(
                written_off, written_off.c.wallet_id == wallets.c.wallet_id
            )
        )
        .where(sa.or_(balance != ledger_coins + written_off_coins, money != ledger_money))
        .order_by(wallets.c.wallet_id)
    )
    if wallet_ids is not None:
        query = query.where(wallets.c.wallet_id.in_(wallet_ids))
    return [_wallet_drift(row) for row in session.execute(query)]


def _wallet_drift(row: Any) -> WalletDrift:
    return WalletDrift(
        wallet_id=row.wallet_id,
        user_id=row.user_id,
        balance_coins=int(row.balance_coins),
        ledger_coins=int(row.ledger_coins),
        written_off_coins=int(row.written_off_coins),
        coins_difference=int(row.balance_coins)
        - int(row.ledger_coins)
        - int(row.written_off_coins),
        withdrawable_money=rupees_read(row.withdrawable_money),
        ledger_money=rupees_read(row.ledger_money),
        money_difference=rupees_read(row.withdrawable_money) - rupees_read(row.ledger_money),
    )


def changed_after_settlement(
    session: Session, call_ids: list[int] | None = None
) -> list[ChangedAfterSettlement]:
    """Calls we settled whose row changed since, not resolved (of `call_ids`, when given)."""
    s, c = settlements, calls
    query = (
        sa.select(
            s.c.call_id,
            s.c.run_uuid,
            s.c.settled_at,
            s.c.earnings,
            s.c.end_time.label("settled_end_time"),
            s.c.coins_spent.label("settled_coins_spent"),
            s.c.listener_money_earned.label("settled_earned"),
            c.c.status,
            c.c.end_time,
            c.c.coins_spent,
            c.c.listener_money_earned,
        )
        .select_from(s.join(c, c.c.call_id == s.c.call_id))
        .where(
            sa.or_(
                c.c.status.is_distinct_from(SETTLED_CALL_STATUS),
                c.c.end_time.is_distinct_from(s.c.end_time),
                c.c.coins_spent.is_distinct_from(s.c.coins_spent),
                c.c.listener_money_earned.is_distinct_from(s.c.listener_money_earned),
            ),
            ~_resolved(PAID_TWICE_AFTER_SETTLEMENT, s.c.call_id),
        )
        .order_by(s.c.call_id)
    )
    if call_ids is not None:
        query = query.where(s.c.call_id.in_(call_ids))
    rows = session.execute(query).all()
    return [
        ChangedAfterSettlement(
            call_id=row.call_id,
            finding=ENDED_AGAIN,
            run_uuid=row.run_uuid,
            settled_at=row.settled_at,
            earnings=rupees_read(row.earnings),
            settled_status=SETTLED_CALL_STATUS,
            status_now=row.status,
            settled_end_time=row.settled_end_time,
            end_time_now=row.end_time,
            settled_coins_spent=int(row.settled_coins_spent),
            coins_spent_now=row.coins_spent,
            settled_listener_money_earned=int(row.settled_earned),
            listener_money_earned_now=row.listener_money_earned,
        )
        for row in rows
    ]


def _not_settled_by_us(call: sa.FromClause) -> sa.ColumnElement[bool]:
    return ~sa.exists().where(settlements.c.call_id == call.c.call_id)


def half_ended_now(session: Session, call_ids: list[int] | None = None) -> list[HalfEndedCall]:
    """The calls half-ended now, not settled by us (of `call_ids`, when given)."""
    query = (
        sa.select(
            calls.c.call_id,
            calls.c.user_id,
            calls.c.listener_id,
            calls.c.end_time,
            sa.func.coalesce(calls.c.coins_spent, 0).label("coins_spent"),
            calls.c.listener_money_earned,
        )
        .where(half_ended.half_ended(calls))
        .order_by(calls.c.call_id)
    )
    if call_ids is not None:
        query = query.where(calls.c.call_id.in_(call_ids))
    return [
        HalfEndedCall(
            call_id=row.call_id,
            caller_id=row.user_id,
            listener_id=row.listener_id,
            end_time=row.end_time,
            coins_spent=int(row.coins_spent),
            listener_money_earned=row.listener_money_earned,
        )
        for row in session.execute(query)
    ]


def ended_again_after_half_end(
    session: Session, call_ids: list[int] | None = None
) -> list[EndedAgainAfterHalfEnd]:
    """Half-ended calls whose row differs from the version first seen (its status
    'ongoing', or 'completed' once `wallets reconcile` completed it), not resolved (of
    `call_ids`, when given)."""
    o, c = observed, calls
    seen_status = _seen_status(o)
    query = (
        sa.select(
            o.c.call_id,
            o.c.seen_at,
            seen_status.label("seen_status"),
            o.c.end_time.label("seen_end_time"),
            o.c.coins_spent.label("seen_coins_spent"),
            o.c.listener_money_earned.label("seen_earned"),
            c.c.user_id,
            c.c.listener_id,
            c.c.status,
            c.c.end_time,
            c.c.coins_spent,
            c.c.listener_money_earned,
        )
        .select_from(o.join(c, c.c.call_id == o.c.call_id))
        .where(
            sa.or_(
                c.c.status.is_distinct_from(seen_status),
                c.c.end_time.is_distinct_from(o.c.end_time),
                sa.func.coalesce(c.c.coins_spent, 0) != o.c.coins_spent,
                c.c.listener_money_earned.is_distinct_from(o.c.listener_money_earned),
            ),
            ~_resolved(PAID_TWICE_AFTER_HALF_END, o.c.call_id),
        )
        .order_by(o.c.call_id)
    )
    if call_ids is not None:
        query = query.where(o.c.call_id.in_(call_ids))
    return [_ended_again(row) for row in session.execute(query)]


def _seen_status(seen: sa.FromClause) -> sa.ColumnElement[str]:
    """The status of the half-ended call's first seen version: 'ongoing', or 'completed'
    once `wallets reconcile` completed it."""
    return sa.case(
        (
            sa.exists().where(
                corrections.c.call_id == seen.c.call_id,
                corrections.c.finding == HALF_ENDED,
                corrections.c.action == COMPLETED,
            ),
            COMPLETED,
        ),
        else_=CallStatus.ONGOING,
    )


def _ended_again(row: sa.Row[Any]) -> EndedAgainAfterHalfEnd:
    return EndedAgainAfterHalfEnd(
        call_id=row.call_id,
        finding=ENDED_AGAIN_AFTER_HALF_END,
        caller_id=row.user_id,
        listener_id=row.listener_id,
        seen_at=row.seen_at,
        seen_status=row.seen_status,
        status_now=row.status,
        seen_end_time=row.seen_end_time,
        end_time_now=row.end_time,
        seen_coins_spent=int(row.seen_coins_spent),
        coins_spent_now=row.coins_spent,
        seen_listener_money_earned=row.seen_earned,
        listener_money_earned_now=row.listener_money_earned,
    )


def charge_drift(session: Session, now: datetime, settings: Settings) -> list[CallDrift]:
    """Ongoing calls billing bills (not half-ended, not settled by us) charged off their due."""
    rate = coin_rate(calls.c.call_type, settings)
    spent = sa.func.coalesce(calls.c.coins_spent, 0)
    due_now = coins_due(rate, elapsed_seconds(now, calls.c.start_time))
    due_by_now = coins_due(rate, elapsed_seconds(now - BILLING_GRACE, calls.c.start_time))
    rows = session.execute(
        sa.select(
            calls.c.call_id,
            calls.c.call_type,
            spent.label("coins_spent"),
            due_now.label("due_now"),
            due_by_now.label("due_by_now"),
        )
        .where(
            calls.c.status == CallStatus.ONGOING,
            calls.c.end_time.is_(None),
            _not_settled_by_us(calls),
            sa.or_(spent > due_now, spent < due_by_now),
        )
        .order_by(calls.c.call_id)
    ).all()
    return [
        CallDrift(
            call_id=row.call_id,
            call_type=row.call_type,
            coins_spent=int(row.coins_spent),
            coins_due_now=int(row.due_now),
            coins_due_by_now=int(row.due_by_now),
            drift="overcharged" if row.coins_spent > row.due_now else "undercharged",
        )
        for row in rows
    ]


def duplicate_badges(session: Session) -> list[DuplicateBadge]:
    key = (badges.c.listener_id, badges.c.date)
    duplicated = (
        sa.select(*key, sa.func.count().label("rows"))
        .group_by(*key)
        .having(sa.func.count() > 1)
        .subquery("duplicated")
    )
    read = one_row_each(
        sa.tuple_(*key).in_(sa.select(duplicated.c.listener_id, duplicated.c.date)), "read"
    )
    rows = session.execute(
        sa.select(
            duplicated.c.listener_id,
            duplicated.c.date,
            duplicated.c.rows,
            read.c.badge,
            read.c.audio_rate_per_minute,
            read.c.video_rate_per_minute,
        )
        .select_from(
            duplicated.join(
                read,
                sa.and_(
                    read.c.listener_id == duplicated.c.listener_id,
                    read.c.date == duplicated.c.date,
                ),
            )
        )
        .order_by(duplicated.c.date, duplicated.c.listener_id)
    ).all()
    return [
        DuplicateBadge(
            listener_id=row.listener_id,
            date=row.date,
            rows=int(row.rows),
            badge=row.badge,
            audio_rate_per_minute=rupees_read(row.audio_rate_per_minute),
            video_rate_per_minute=rupees_read(row.video_rate_per_minute),
        )
        for row in rows
    ]
