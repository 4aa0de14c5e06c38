"""Applying `wallets reconcile`'s plan (jobs/reconcile.py): each correction with a guarded
statement, recorded in ops_corrections, then conservation checked before the runner commits.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.billing.conservation import ConservationError
from saathii_ops.db.calls import CallStatus
from saathii_ops.db.engine import database_now
from saathii_ops.db.tables import ops_corrections as corrections
from saathii_ops.db.tables import user_calls as calls
from saathii_ops.db.tables import user_transactions as ledger
from saathii_ops.db.tables import user_wallets as wallets
from saathii_ops.errors import PlanChanged
from saathii_ops.jobs import half_ended
from saathii_ops.jobs.audit_findings import (
    COMPLETED,
    ERASED_DEBIT,
    HALF_ENDED,
    PAID_TWICE_AFTER_HALF_END,
    PAID_TWICE_AFTER_SETTLEMENT,
    changed_after_settlement,
    ended_again_after_half_end,
    half_ended_now,
    wallet_drift,
)
from saathii_ops.jobs.reconcile_plan import APPLIED_ACTIONS, REVERSED, PlannedCorrection


def apply_corrections(
    session: Session,
    now: datetime,
    items: list[PlannedCorrection],
    reason: str,
    corrected_by: str,
) -> None:
    acting = [item for item in items if item.action in APPLIED_ACTIONS]
    if not acting:
        return
    wallet_ids = sorted({item.wallet_id for item in acting if item.wallet_id is not None})
    before = _total_balance(session, wallet_ids)
    rows_written = 0
    corrected_at = database_now(session)
    for item in acting:
        if item.coins_change:
            _change_balance(session, now, item)
        if item.action == REVERSED and item.coins_change:
            _write_reversal_row(session, now, item)
            rows_written += item.coins_change
        if item.action == COMPLETED:
            _complete_call(session, now, item)
        _record_correction(session, corrected_at, corrected_by, reason, item)
    _check_conservation(session, acting, before, _total_balance(session, wallet_ids), rows_written)


def _change_balance(session: Session, now: datetime, item: PlannedCorrection) -> None:
    """The wallet's balance_coins moved by the correction, guarded by the balance read."""
    assert item.wallet_id is not None
    balance = _balance(session, item.wallet_id)
    changed = session.connection().execute(
        sa.update(wallets)
        .where(wallets.c.wallet_id == item.wallet_id, wallets.c.balance_coins == balance)
        .values(balance_coins=wallets.c.balance_coins + item.coins_change, updated_at=now)
    )
    expect_one(f"wallet {item.wallet_id} corrected", changed.rowcount)
    item.after = {"balance_coins": balance + item.coins_change}


def _write_reversal_row(session: Session, now: datetime, item: PlannedCorrection) -> None:
    """The negative 'earn' row of a reversed second payment."""
    item.transaction_id = session.execute(
        sa.insert(ledger)
        .values(
            wallet_id=item.wallet_id,
            tx_type="earn",
            coins_change=item.coins_change,
            money_change=Decimal("0.00"),
            created_at=now,
            updated_at=now,
        )
        .returning(ledger.c.transaction_id)
    ).scalar_one()


def _complete_call(session: Session, now: datetime, item: PlannedCorrection) -> None:
    """A call still half-ended: recorded as seen, then status 'completed'."""
    assert item.call_id is not None
    half_ended.record(session, None, sa.select(sa.literal(item.call_id)))
    completed = session.connection().execute(
        sa.update(calls)
        .where(
            calls.c.call_id == item.call_id,
            calls.c.status == CallStatus.ONGOING,
            calls.c.end_time.is_not(None),
        )
        .values(status=COMPLETED, updated_at=now)
    )
    expect_one(f"call {item.call_id} completed", completed.rowcount)
    item.after = {"status": COMPLETED}


def _record_correction(
    session: Session,
    corrected_at: datetime,
    corrected_by: str,
    reason: str,
    item: PlannedCorrection,
) -> None:
    """The correction's ops_corrections row, with what it changed (`after`)."""
    after = dict(item.after or {})
    if item.transaction_id is not None:
        after["transaction_id"] = item.transaction_id
    if item.uncollectable_coins:
        after["uncollectable_coins"] = item.uncollectable_coins
    item.after = after or {"unchanged": True}
    item.correction_id = session.execute(
        sa.insert(corrections)
        .values(
            corrected_at=corrected_at,
            corrected_by=corrected_by,
            reason=reason,
            finding=item.finding,
            action=item.action,
            wallet_id=item.wallet_id,
            call_id=item.call_id,
            coins_change=item.coins_change,
            uncollectable_coins=item.uncollectable_coins,
            transaction_id=item.transaction_id,
            before=item.before,
            after=item.after,
        )
        .returning(corrections.c.correction_id)
    ).scalar_one()


def expect_one(what: str, changed: int) -> None:
    if changed != 1:
        raise PlanChanged(f"{what}: {changed} rows changed, the plan expected 1")


def _balance(session: Session, wallet_id: int) -> int:
    value = session.execute(
        sa.select(sa.func.coalesce(wallets.c.balance_coins, 0)).where(
            wallets.c.wallet_id == wallet_id
        )
    ).scalar_one()
    return int(value)


def _total_balance(session: Session, wallet_ids: list[int]) -> int:
    if not wallet_ids:
        return 0
    value = session.execute(
        sa.select(sa.func.coalesce(sa.func.sum(wallets.c.balance_coins), 0)).where(
            wallets.c.wallet_id.in_(wallet_ids)
        )
    ).scalar_one()
    return int(value)


def _check_conservation(
    session: Session,
    acting: list[PlannedCorrection],
    before: int,
    after: int,
    reversal_rows: int,
) -> None:
    """Coins taken from balances = what the plan takes; reversal rows = the reversals'
    share of it; and every finding corrected is gone from the audit."""
    planned = sum(item.coins_change for item in acting)
    reversed_ = sum(item.coins_change for item in acting if item.action == REVERSED)
    problems = []
    if after - before != planned or reversal_rows != reversed_:
        problems.append(
            f"coins: planned {planned}, balances changed {after - before}, reversal rows "
            f"{reversal_rows} (planned {reversed_})"
        )
    collected = [item.wallet_id for item in acting if item.finding == ERASED_DEBIT]
    still_off = [
        d.wallet_id
        for d in wallet_drift(session, [w for w in collected if w is not None])
        if d.coins_difference
    ]

    def corrected(finding: str) -> list[int]:
        return [i.call_id for i in acting if i.finding == finding and i.call_id is not None]

    left = [
        c.call_id for c in changed_after_settlement(session, corrected(PAID_TWICE_AFTER_SETTLEMENT))
    ]
    left += [
        c.call_id for c in ended_again_after_half_end(session, corrected(PAID_TWICE_AFTER_HALF_END))
    ]
    left += [c.call_id for c in half_ended_now(session, corrected(HALF_ENDED))]
    if still_off:
        problems.append(f"wallets still off their ledger: {still_off}")
    if left:
        problems.append(f"calls still found: {sorted(set(left))}")
    if problems:
        raise ConservationError(
            "conservation violated, nothing was changed: " + "; ".join(problems)
        )
