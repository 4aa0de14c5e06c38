"""What the billing tests check again and again: the ledger, and the money tables' rows."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.billing.report import BillingReport
from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import user_calls, user_status, user_transactions, user_wallets
from saathii_ops.runtime.registry import JobService
from saathii_ops.settings import Settings
from tests.factories import run_context


def assert_ledger_balanced(engine: Engine) -> None:
    """Every wallet holds exactly the sum of its ledger rows, coins and rupees; none is negative.

    The factories back every balance with ledger rows, so this holds before a
    run and, if a run changes a wallet only together with the rows it writes,
    after it.
    """
    with transaction(engine) as s:
        ledger = (
            sa.select(
                user_transactions.c.wallet_id,
                sa.func.sum(user_transactions.c.coins_change).label("coins"),
                sa.func.sum(user_transactions.c.money_change).label("money"),
            )
            .group_by(user_transactions.c.wallet_id)
            .subquery()
        )
        rows = s.execute(
            sa.select(
                user_wallets.c.wallet_id,
                user_wallets.c.balance_coins,
                user_wallets.c.withdrawable_money,
                sa.func.coalesce(ledger.c.coins, 0),
                sa.func.coalesce(ledger.c.money, 0),
            ).outerjoin(ledger, ledger.c.wallet_id == user_wallets.c.wallet_id)
        ).all()
    for wallet_id, balance, money, ledger_coins, ledger_money in rows:
        assert balance == ledger_coins, (
            f"wallet {wallet_id}: {balance} coins, ledger {ledger_coins}"
        )
        assert Decimal(money) == Decimal(ledger_money).quantize(Decimal("0.01")), (
            f"wallet {wallet_id}: {money} rupees, ledger {ledger_money}"
        )


def money_tables(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables billing may change, for "nothing changed" comparisons."""
    with transaction(engine) as s:
        return {
            money_table.name: [
                tuple(row)
                for row in s.execute(
                    sa.select(money_table).order_by(*money_table.primary_key.columns)
                )
            ]
            for money_table in (user_wallets, user_transactions, user_calls, user_status)
        }


def call_row(engine: Engine, call_id: int) -> Any:
    with transaction(engine) as s:
        return s.execute(sa.select(user_calls).where(user_calls.c.call_id == call_id)).one()


def wallet(engine: Engine, user_id: int) -> tuple[int, Decimal] | None:
    """(balance_coins, withdrawable_money) of a user's wallet, None when there is none."""
    with transaction(engine) as s:
        row = s.execute(
            sa.select(user_wallets.c.balance_coins, user_wallets.c.withdrawable_money).where(
                user_wallets.c.user_id == user_id
            )
        ).one_or_none()
    return None if row is None else (row[0], row[1])


def ledger_rows(engine: Engine, user_id: int) -> list[tuple[str, int, Decimal]]:
    """(tx_type, coins_change, money_change) of a user's ledger rows, oldest first."""
    with transaction(engine) as s:
        return [
            (r.tx_type, r.coins_change, r.money_change)
            for r in s.execute(
                sa.select(
                    user_transactions.c.tx_type,
                    user_transactions.c.coins_change,
                    user_transactions.c.money_change,
                )
                .join(user_wallets, user_wallets.c.wallet_id == user_transactions.c.wallet_id)
                .where(user_wallets.c.user_id == user_id)
                .order_by(user_transactions.c.transaction_id)
            )
        ]


def status_of(engine: Engine, user_id: int) -> tuple[bool | None, int | None]:
    """(is_busy, wait_time)"""
    with transaction(engine) as s:
        row = s.execute(
            sa.select(user_status.c.is_busy, user_status.c.wait_time).where(
                user_status.c.user_id == user_id
            )
        ).one()
    return row[0], row[1]


def run_service(
    engine: Engine, service: JobService, now: datetime, *, apply: bool
) -> BillingReport:
    """A billing service in its own transaction: committed when applied, read-only otherwise."""
    with transaction(engine, read_only=not apply) as s:
        report = service(run_context(s, now, Settings(), apply=apply))
        assert isinstance(report, BillingReport)
        if apply:
            s.commit()
    return report


def wait_for_a_lock_wait(engine: Engine, job: threading.Thread) -> None:
    """Until some backend of this database waits for a row lock, or `job` ends (at most 30 s)."""
    with engine.connect() as conn:
        for _ in range(300):
            waiting = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            conn.rollback()  # pg_stat_activity is a snapshot per transaction
            if waiting or not job.is_alive():
                return
            time.sleep(0.1)
