"""Settlement (SPEC §5): ending an ongoing call and paying its listener.

The plan computes, by the rules of `rules`, what each call it ends is settled with
(durations, the listener's rate, earnings in paise). The call's row is ended in the same
guarded rewrite that adds its last charge (`charging.write_calls`: one rewrite of the row,
not two); `settle` then pays the listeners and records each settlement in ops_settlements
(at most one row per call, by its primary key), and `free_parties` frees both parties, in
the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.billing.charging import expect, write_ledger_rows
from saathii_ops.billing.money import rupees_of, whole_rupees_of
from saathii_ops.billing.plan import StoredPlan
from saathii_ops.db.engine import database_now, is_sqlite
from saathii_ops.db.tables import (
    Money,
    Rate,
    UTCDateTime,
)
from saathii_ops.db.tables import ops_settlements as settlements
from saathii_ops.db.tables import user_status as status
from saathii_ops.db.tables import user_transactions as ledger
from saathii_ops.db.tables import user_wallets as wallets

SETTLEMENT_COLUMNS = [
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
]


def settle(
    session: Session,
    now: datetime,
    plan: StoredPlan,
    chunk: sa.ColumnElement[bool],
    run_id: str,
) -> Decimal:
    """Pay the listeners of the plan's calls marked `ends` within `chunk` (which
    `charging.write_calls` has ended) and record the settlements; `free_parties` frees
    their parties once every chunk is settled.

    The plan rows carry what the rules computed for each call (after it was
    billed). Each step is one set-based statement. Returns Σ money_change of the
    'earn' rows written.
    """
    ending = sa.and_(chunk, plan.ends.is_(True))
    paid = sa.and_(ending, plan.earnings_paise > 0)
    calls_ending, listeners_paid, earn_rows_planned = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.count(sa.distinct(plan.listener_id)).filter(plan.earnings_paise > 0),
            sa.func.count().filter(plan.earnings_paise > 0),
        ).where(ending)
    ).one()
    if not calls_ending:
        return Decimal("0.00")

    credited = _credit_listeners(session, now, plan, paid)
    expect("listener wallets credited", credited, listeners_paid)
    _number_earn_rows(session, plan, paid)
    earn_rows = write_ledger_rows(
        session,
        "earn",
        now,
        sa.select(
            plan.earn_transaction_id,
            wallets.c.wallet_id,
            sa.literal(0, sa.BigInteger),
            rupees_of(plan.earnings_paise),
        )
        .select_from(plan.table.join(wallets, wallets.c.user_id == plan.listener_id))
        .where(paid)
        .order_by(plan.call_id),
        with_ids=True,
    )
    expect("'earn' ledger rows written", len(earn_rows), earn_rows_planned)
    expect("settlements recorded", _record(session, now, plan, ending, run_id), calls_ending)
    return sum((Decimal(row.money_change) for row in earn_rows), Decimal("0.00"))


def _credit_listeners(
    session: Session, now: datetime, plan: StoredPlan, paid: sa.ColumnElement[bool]
) -> int:
    """Credit each paid listener's wallet (made first when they have none) with their
    earnings; returns how many wallets it credited."""
    session.execute(
        sa.insert(wallets).from_select(
            ["user_id", "balance_coins", "withdrawable_money", "created_at", "updated_at"],
            sa.select(
                plan.listener_id,
                sa.literal(0, sa.BigInteger),
                sa.literal(Decimal("0.00"), Money),
                sa.literal(now, UTCDateTime()),
                sa.literal(now, UTCDateTime()),
            )
            .where(paid, ~sa.exists().where(wallets.c.user_id == plan.listener_id))
            .distinct(),
        )
    )
    earned = (
        sa.select(plan.listener_id, sa.func.sum(plan.earnings_paise).label("paise"))
        .where(paid)
        .group_by(plan.listener_id)
        .subquery()
    )
    credited = session.execute(
        sa.update(wallets)
        .where(wallets.c.user_id == earned.c.listener_id)
        .values(
            withdrawable_money=sa.func.coalesce(wallets.c.withdrawable_money, 0)
            + rupees_of(earned.c.paise),
            updated_at=now,
        )
        .returning(wallets.c.wallet_id)
    ).all()
    return len(credited)


def _record(
    session: Session,
    now: datetime,
    plan: StoredPlan,
    ending: sa.ColumnElement[bool],
    run_id: str,
) -> int:
    """One ops_settlements row per call ended; returns how many it wrote."""
    recorded = session.execute(
        sa.insert(settlements)
        .from_select(
            SETTLEMENT_COLUMNS,
            sa.select(
                plan.call_id,
                sa.literal(run_id, sa.String(32)),
                sa.literal(database_now(session), UTCDateTime()),
                sa.literal(now, UTCDateTime()),
                plan.duration_seconds,
                plan.duration_minutes,
                plan.coins_spent + plan.charge,
                whole_rupees_of(plan.earnings_paise),
                plan.paid_minutes,
                sa.cast(rupees_of(plan.rate_paise), Rate),
                rupees_of(plan.earnings_paise),
                wallets.c.wallet_id,
                plan.earn_transaction_id,
            )
            .select_from(
                plan.table.outerjoin(
                    wallets,
                    sa.and_(wallets.c.user_id == plan.listener_id, plan.earnings_paise > 0),
                )
            )
            .where(ending),
        )
        .returning(settlements.c.call_id)
    ).all()
    return len(recorded)


def free_parties(session: Session, now: datetime, plan: StoredPlan) -> None:
    """Clear the busy flags and wait times of both parties of every call the plan ends: one
    statement for the run, since finding the parties' rows costs a scan of user_status
    (a statement per chunk was one scan each)."""
    ending = plan.ends.is_(True)
    parties = sa.union(
        sa.select(plan.caller_id).where(ending), sa.select(plan.listener_id).where(ending)
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


def _number_earn_rows(session: Session, plan: StoredPlan, paid: sa.ColumnElement[bool]) -> None:
    """Give each 'earn' row to write its transaction_id beforehand, so that the settlement
    record names it: PostgreSQL draws them from the column's own sequence (the app
    inserts concurrently); SQLite holds the database's write lock, so max + n is free."""
    if not is_sqlite(session):
        sequence = sa.func.pg_get_serial_sequence("user_transactions", "transaction_id")
        session.execute(
            sa.update(plan.table).where(paid).values(earn_transaction_id=sa.func.nextval(sequence))
        )
        return
    numbered = (
        sa.select(plan.call_id, sa.func.row_number().over(order_by=plan.call_id).label("n"))
        .where(paid)
        .subquery()
    )
    last = sa.select(sa.func.coalesce(sa.func.max(ledger.c.transaction_id), 0)).scalar_subquery()
    session.execute(
        sa.update(plan.table)
        .where(plan.call_id == numbered.c.call_id)
        .values(earn_transaction_id=last + numbered.c.n)
    )
