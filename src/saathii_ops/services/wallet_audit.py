"""`wallets audit` (SPEC §13): the operator's proof that no coin or rupee was lost.

Two set-based queries, each one pass over its table:
- wallets whose balance_coins or withdrawable_money differs from the sum of
  their ledger rows (coins_change, money_change), with the difference;
- ongoing calls charged more than every started minute requires at `now`
  (overcharged), or less than billing should have caught up to by now
  (undercharged: still owing for a minute that started more than
  BILLING_GRACE ago — coin deduction runs every minute, so a fresh minute is
  not yet owed by the books);
- ongoing calls that billing cannot bill (its PROBLEMS: bad rows it skips),
  counted by billing's own `count_calls`.
The rules are billing's own: `coin_rate`, `coins_due`, `elapsed_seconds`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.db import elapsed_seconds
from saathii_ops.models import UserCall, UserTransaction, UserWallet, table
from saathii_ops.reports import Report
from saathii_ops.services.billing import BILLING_GRACE, coin_rate, coins_due, count_calls
from saathii_ops.settings import Settings

wallets = table(UserWallet)
ledger = table(UserTransaction)
calls = table(UserCall)


@dataclass
class WalletDrift:
    wallet_id: int
    user_id: int | None
    balance_coins: int
    ledger_coins: int
    coins_difference: int  # balance - ledger
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
class WalletAuditReport(Report):
    now: datetime
    wallets_off: int
    calls_overcharged: int
    calls_undercharged: int
    calls_unbillable: int  # skipped by billing: `coins deduct --dry-run` names each
    wallets: list[WalletDrift] = field(default_factory=list)
    calls: list[CallDrift] = field(default_factory=list)

    @property
    def failed_rows(self) -> int:
        return (
            self.wallets_off
            + self.calls_overcharged
            + self.calls_undercharged
            + self.calls_unbillable
        )


def audit(session: Session, now: datetime, settings: Settings) -> WalletAuditReport:
    totals = (
        sa.select(
            ledger.c.wallet_id,
            sa.func.sum(sa.func.coalesce(ledger.c.coins_change, 0)).label("coins"),
            sa.func.sum(sa.func.coalesce(ledger.c.money_change, 0)).label("money"),
        )
        .group_by(ledger.c.wallet_id)
        .subquery("totals")
    )
    balance = sa.func.coalesce(wallets.c.balance_coins, 0)
    money = sa.func.coalesce(wallets.c.withdrawable_money, 0)
    ledger_coins = sa.func.coalesce(totals.c.coins, 0)
    ledger_money = sa.func.coalesce(totals.c.money, 0)
    wallet_rows = session.execute(
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
    drifted_wallets = [
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
        for row in wallet_rows
    ]

    rate = coin_rate(calls.c.call_type, settings)
    spent = sa.func.coalesce(calls.c.coins_spent, 0)
    due_now = coins_due(rate, elapsed_seconds(now, calls.c.start_time))
    due_by_now = coins_due(rate, elapsed_seconds(now - BILLING_GRACE, calls.c.start_time))
    call_rows = session.execute(
        sa.select(
            calls.c.call_id,
            calls.c.call_type,
            spent.label("coins_spent"),
            due_now.label("due_now"),
            due_by_now.label("due_by_now"),
        )
        .where(calls.c.status == "ongoing", sa.or_(spent > due_now, spent < due_by_now))
        .order_by(calls.c.call_id)
    ).all()
    drifted_calls = [
        CallDrift(
            call_id=row.call_id,
            call_type=row.call_type,
            coins_spent=int(row.coins_spent),
            coins_due_now=int(row.due_now),
            coins_due_by_now=int(row.due_by_now),
            drift="overcharged" if row.coins_spent > row.due_now else "undercharged",
        )
        for row in call_rows
    ]
    return WalletAuditReport(
        now=now,
        wallets_off=len(drifted_wallets),
        calls_overcharged=sum(1 for c in drifted_calls if c.drift == "overcharged"),
        calls_undercharged=sum(1 for c in drifted_calls if c.drift == "undercharged"),
        calls_unbillable=count_calls(session, now, settings).unbillable,
        wallets=drifted_wallets,
        calls=drifted_calls,
    )


def _rupees(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))
