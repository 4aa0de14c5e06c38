"""`wallets audit` (SPEC §13): the operator's proof that no coin or rupee was lost,
true on the app's real data (docs/running-beside-the-app.md says what each finding
means and what to do about it).

Set-based queries, each one pass over its table:
- wallets whose balance_coins differs from Σ coins_change of all their rows
  (the app's purchases, its first-minute spends and its coin earnings, our
  spends, bonuses…), or whose withdrawable_money differs from Σ money_change of
  their rows that move withdrawable money: 'earn' and 'withdraw' (a purchase's
  money_change is the rupees the customer paid: not wallet money), with the
  difference;
- calls saathii-ops settled whose row changed afterwards (status, end_time,
  coins_spent or listener_money_earned differ from ops_settlements): ended again
  after settlement, the listener may have been paid twice; both versions;
- ongoing calls with an end_time (half-ended by the app), not settled by us;
- the other ongoing calls charged more than every started minute requires at
  `now` (overcharged), or less than billing should have caught up to by now
  (undercharged: still owing for a minute that started more than
  BILLING_GRACE ago — coin deduction runs every minute, so a fresh minute is
  not yet owed by the books);
- ongoing calls that billing cannot bill (its PROBLEMS, the half-ended and
  settled-before calls above included), counted by billing's own `count_calls`.
Billing's own rules: `coin_rate`, `coins_due`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.db import elapsed_seconds
from saathii_ops.formatting import plural
from saathii_ops.models import Settlement, UserCall, UserTransaction, UserWallet, table
from saathii_ops.reports import Report
from saathii_ops.services.billing import BILLING_GRACE, coin_rate, coins_due, count_calls
from saathii_ops.settings import Settings

wallets = table(UserWallet)
ledger = table(UserTransaction)
calls = table(UserCall)
settlements = table(Settlement)

# The ledger rows that move withdrawable_money (rupees). The app's 'purchase' rows
# carry in money_change the rupees the customer paid for the coins: not wallet money.
MONEY_TX_TYPES = ("earn", "withdraw")
SETTLED_STATUS = "dropped"  # what settlement writes
ENDED_AGAIN = "ended again after settlement — the listener may have been paid twice"


@dataclass
class WalletDrift:
    wallet_id: int
    user_id: int | None
    balance_coins: int
    ledger_coins: int
    coins_difference: int  # balance - ledger (> 0: a debit was lost)
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
class WalletAuditReport(Report):
    now: datetime
    wallets_off: int
    calls_changed_after_settlement: int
    calls_half_ended: int
    calls_overcharged: int
    calls_undercharged: int
    calls_unbillable: int  # every call billing skips (half-ended included): dry-run names each
    wallets: list[WalletDrift] = field(default_factory=list)
    changed_after_settlement: list[ChangedAfterSettlement] = field(default_factory=list)
    half_ended: list[HalfEndedCall] = field(default_factory=list)
    calls: list[CallDrift] = field(default_factory=list)

    @property
    def failed_rows(self) -> int:
        return (
            self.wallets_off
            + self.calls_changed_after_settlement
            + self.calls_half_ended
            + self.calls_overcharged
            + self.calls_undercharged
            + self.calls_unbillable
        )

    def found(self) -> str | None:
        found = [
            plural(count, noun) + what
            for count, noun, what in (
                (self.wallets_off, "wallet", " off the ledger"),
                (self.calls_changed_after_settlement, "call", " changed after settlement"),
                (self.calls_half_ended, "half-ended call", ""),
                (self.calls_overcharged, "ongoing call", " charged more than due"),
                (self.calls_undercharged, "ongoing call", " charged less than due"),
                (self.calls_unbillable, "ongoing call", " billing cannot bill"),
            )
            if count
        ]
        return f"found {', '.join(found)}" if found else None


def audit(session: Session, now: datetime, settings: Settings) -> WalletAuditReport:
    drifted_wallets = _wallets(session)
    changed = _changed_after_settlement(session)
    half_ended = _half_ended(session)
    drifted_calls = _charge_drift(session, now, settings)
    return WalletAuditReport(
        now=now,
        wallets_off=len(drifted_wallets),
        calls_changed_after_settlement=len(changed),
        calls_half_ended=len(half_ended),
        calls_overcharged=sum(1 for c in drifted_calls if c.drift == "overcharged"),
        calls_undercharged=sum(1 for c in drifted_calls if c.drift == "undercharged"),
        calls_unbillable=count_calls(session, now, settings).unbillable,
        wallets=drifted_wallets,
        changed_after_settlement=changed,
        half_ended=half_ended,
        calls=drifted_calls,
    )


def audit_job(session: Session, now: datetime, settings: Settings, *, apply: bool) -> Report:
    """The registered job `wallets-audit`: read-only either way; the runner records it."""
    return audit(session, now, settings)


def _wallets(session: Session) -> list[WalletDrift]:
    money_row = ledger.c.tx_type.in_(MONEY_TX_TYPES)
    totals = (
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
    balance = sa.func.coalesce(wallets.c.balance_coins, 0)
    money = sa.func.coalesce(wallets.c.withdrawable_money, 0)
    ledger_coins = sa.func.coalesce(totals.c.coins, 0)
    ledger_money = sa.func.coalesce(totals.c.money, 0)
    rows = session.execute(
        sa.select(
            wallets.c.wallet_id,
            wallets.c.user_id,
            balance.label("balance_coins"),
            ledger_coins.label("ledger_coins"),
            money.label("withdrawable_money"),
            ledger_money.label("ledger_money"),
        )
        .select_from(wallets.outerjoin(totals, totals.c.wallet_id == wallets.c.wallet_id))
        .where(sa.or_(balance != ledger_coins, money != ledger_money))
        .order_by(wallets.c.wallet_id)
    ).all()
    return [
        WalletDrift(
            wallet_id=row.wallet_id,
            user_id=row.user_id,
            balance_coins=int(row.balance_coins),
            ledger_coins=int(row.ledger_coins),
            coins_difference=int(row.balance_coins) - int(row.ledger_coins),
            withdrawable_money=_rupees(row.withdrawable_money),
            ledger_money=_rupees(row.ledger_money),
            money_difference=_rupees(row.withdrawable_money) - _rupees(row.ledger_money),
        )
        for row in rows
    ]


def _changed_after_settlement(session: Session) -> list[ChangedAfterSettlement]:
    s, c = settlements, calls
    rows = session.execute(
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
                c.c.status.is_distinct_from(SETTLED_STATUS),
                c.c.end_time.is_distinct_from(s.c.end_time),
                c.c.coins_spent.is_distinct_from(s.c.coins_spent),
                c.c.listener_money_earned.is_distinct_from(s.c.listener_money_earned),
            )
        )
        .order_by(s.c.call_id)
    ).all()
    return [
        ChangedAfterSettlement(
            call_id=row.call_id,
            finding=ENDED_AGAIN,
            run_uuid=row.run_uuid,
            settled_at=row.settled_at,
            earnings=_rupees(row.earnings),
            settled_status=SETTLED_STATUS,
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


def _half_ended(session: Session) -> list[HalfEndedCall]:
    rows = session.execute(
        sa.select(
            calls.c.call_id,
            calls.c.user_id,
            calls.c.listener_id,
            calls.c.end_time,
            sa.func.coalesce(calls.c.coins_spent, 0).label("coins_spent"),
            calls.c.listener_money_earned,
        )
        .where(
            calls.c.status == "ongoing",
            calls.c.end_time.is_not(None),
            _not_settled_by_us(calls),  # then it is a call changed after settlement
        )
        .order_by(calls.c.call_id)
    ).all()
    return [
        HalfEndedCall(
            call_id=row.call_id,
            caller_id=row.user_id,
            listener_id=row.listener_id,
            end_time=row.end_time,
            coins_spent=int(row.coins_spent),
            listener_money_earned=row.listener_money_earned,
        )
        for row in rows
    ]


def _charge_drift(session: Session, now: datetime, settings: Settings) -> list[CallDrift]:
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
            calls.c.status == "ongoing",
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


def _rupees(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))
