"""Applying a stored plan: guarded set-based statements, each checked to change exactly
the rows the plan expects (anything else rolls the whole run back), and the ledger rows
that record them. Charging is here, and the one rewrite of each call's row (its charge and,
when it ends, its end); paying the listeners and the rest of settlement is settlement's."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.billing.money import whole_rupees_of
from saathii_ops.billing.plan import StoredPlan
from saathii_ops.db.calls import SETTLED_CALL_STATUS, CallStatus
from saathii_ops.db.tables import Money, UTCDateTime
from saathii_ops.db.tables import user_calls as calls
from saathii_ops.db.tables import user_transactions as ledger
from saathii_ops.db.tables import user_wallets as wallets
from saathii_ops.errors import PlanChanged


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
    session: Session, now: datetime, plan: StoredPlan, chunk: sa.ColumnElement[bool]
) -> int:
    """Charge the chunk's callers: their wallets, one 'spend' row per call charged (the
    calls' own rows are written by `write_calls`).

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


def write_calls(
    session: Session,
    now: datetime,
    plan: StoredPlan,
    chunk: sa.ColumnElement[bool],
    cache_updates: array[int] | None,
) -> None:
    """Rewrite each call of the chunk the plan charges or ends, once: its charge added to
    coins_spent and, when it ends, settlement's end of it (status 'dropped', end time,
    durations, the listener's whole rupees, as the plan computed them). Guarded by status
    and, for a call charged, by the coins_spent the plan saw. Each charged call's
    (call_id, coins_spent) is appended to `cache_updates` when given.
    """
    acting = sa.and_(chunk, plan.acting())
    charged, ends = plan.charge > 0, plan.ends.is_(True)
    planned_calls, planned_ending = session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(ends)).where(acting)
    ).one()
    if not planned_calls:
        return

    spent = sa.func.coalesce(calls.c.coins_spent, 0)

    def on_end(value: Any, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.case((ends, value), else_=column)

    write = (
        sa.update(calls)
        .where(
            calls.c.call_id == plan.call_id,
            acting,
            calls.c.status == CallStatus.ONGOING,
            sa.or_(~charged, spent == plan.coins_spent),  # nobody charged it since the plan
        )
        .values(
            coins_spent=sa.case((charged, spent + plan.charge), else_=calls.c.coins_spent),
            status=on_end(sa.literal(SETTLED_CALL_STATUS.value, sa.String(20)), calls.c.status),
            end_time=on_end(sa.literal(now, UTCDateTime()), calls.c.end_time),
            duration_seconds=on_end(plan.duration_seconds, calls.c.duration_seconds),
            duration_minutes=on_end(plan.duration_minutes, calls.c.duration_minutes),
            listener_money_earned=on_end(
                whole_rupees_of(plan.earnings_paise), calls.c.listener_money_earned
            ),
            updated_at=now,
        )
    )
    # SQLite's RETURNING cannot name the plan (a table of the FROM): whether a call was
    # charged is read back by a subquery
    planned = plan.table.alias("planned")
    was_charged = (
        sa.select(planned.c.charge).where(planned.c.call_id == calls.c.call_id).scalar_subquery()
        > 0
    )
    written = session.execute(
        write.returning(calls.c.status, calls.c.call_id, calls.c.coins_spent, was_charged)
        if cache_updates is not None
        else write.returning(calls.c.status)
    ).all()
    ended = sum(1 for row in written if row[0] == SETTLED_CALL_STATUS)
    expect("calls ended", ended, planned_ending)
    expect("calls charged or ended", len(written), planned_calls)
    if cache_updates is not None:
        for _, call_id, coins_spent, charged_now in written:
            if charged_now:
                cache_updates.extend((call_id, coins_spent))
