"""Applying a stored plan: guarded set-based statements, each checked to change exactly
the rows the plan expects (anything else rolls the whole run back), and the ledger rows
that record them. Charging is here; ending calls is settlement's."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.billing.plan import StoredPlan
from saathii_ops.db.models import Money, UserCall, UserTransaction, UserWallet, UTCDateTime, table
from saathii_ops.errors import PlanChanged

calls = table(UserCall)
wallets = table(UserWallet)
ledger = table(UserTransaction)


def expect(what: str, changed: int, planned: int) -> None:
    if changed != planned:
        raise PlanChanged(f"{what}: {changed} rows changed, the plan expected {planned}")


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
    source: sa.Select[*tuple[Any, ...]],
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


def charge_chunk(
    session: Session,
    now: datetime,
    plan: StoredPlan,
    chunk: sa.ColumnElement[bool],
    cache_updates: array[int] | None,
) -> int:
    """Charge the chunk's calls: wallets, calls' coins_spent, one 'spend' row per call;
    each charged call's (call_id, coins_spent) appended to `cache_updates` when given.

    Returns Σ coins_change of the rows written.
    """
    charged = sa.and_(chunk, plan.charge > 0)
    planned_calls, planned_wallets = session.execute(
        sa.select(sa.func.count(), sa.func.count(sa.distinct(plan.wallet_id))).where(charged)
    ).one()
    if not planned_calls:
        return 0

    per_wallet = (
        sa.select(plan.wallet_id, sa.func.sum(plan.charge).label("coins"))
        .where(charged)
        .group_by(plan.wallet_id)
        .subquery()
    )
    # the rows changed are counted by the driver's rowcount: no row comes back
    debited = session.connection().execute(
        sa.update(wallets)
        .where(
            wallets.c.wallet_id == per_wallet.c.wallet_id,
            wallets.c.balance_coins >= per_wallet.c.coins,  # never below zero
        )
        .values(balance_coins=wallets.c.balance_coins - per_wallet.c.coins, updated_at=now)
    )
    expect("wallets debited", debited.rowcount, planned_wallets)
    _add_to_calls(session, now, plan, charged, planned_calls, cache_updates)

    written = write_ledger_rows(
        session,
        "spend",
        now,
        sa.select(plan.wallet_id, -plan.charge, sa.literal(Decimal("0.00"), Money))
        .where(charged)
        .order_by(plan.call_id),
    )
    expect("'spend' ledger rows written", len(written), planned_calls)
    return sum(row.coins_change for row in written)


def _add_to_calls(
    session: Session,
    now: datetime,
    plan: StoredPlan,
    charged: sa.ColumnElement[bool],
    planned_calls: int,
    cache_updates: array[int] | None,
) -> None:
    """Add each charged call's charge to its coins_spent, guarded by what the plan saw."""
    spent = sa.func.coalesce(calls.c.coins_spent, 0)
    add = (
        sa.update(calls)
        .where(
            calls.c.call_id == plan.call_id,
            charged,
            calls.c.status == "ongoing",
            spent == plan.coins_spent,  # nobody charged it since the plan
        )
        .values(coins_spent=spent + plan.charge, updated_at=now)
    )
    if cache_updates is None:
        expect("calls charged", session.connection().execute(add).rowcount, planned_calls)
        return
    added = session.execute(add.returning(calls.c.call_id, calls.c.coins_spent)).all()
    expect("calls charged", len(added), planned_calls)
    for call_id, coins_spent in added:
        cache_updates.extend((call_id, coins_spent))
