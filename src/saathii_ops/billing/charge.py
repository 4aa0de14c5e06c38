"""Coin deduction (SPEC §4), the service: what every ongoing call owes at `now`, charging
it, and ending (through settlement) the calls their callers cannot pay for.

One plan, two uses (SPEC §9). The plan (`plan`) is one SQL query over the ongoing calls.
A dry-run selects it. A real run stores it (`StoredPlan`), on PostgreSQL locks what it
changes (`locking`), applies it chunk by chunk with guarded set-based statements
(`charging`, `settlement`), and checks conservation (`conservation`) before the runner
commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.billing import charging, conservation, locking, settlement
from saathii_ops.billing.money import rupees_to_paise
from saathii_ops.billing.plan import EndRules, StoredPlan, call_rows, plan_query
from saathii_ops.billing.problems import Problem
from saathii_ops.billing.report import BillingReport, HeldCall, report, spool_charged
from saathii_ops.db.engine import is_sqlite
from saathii_ops.jobs import half_ended
from saathii_ops.runtime.context import RunContext
from saathii_ops.settings import Settings

# Coin deduction runs every minute, so a call may owe a minute that started
# less than this long ago without billing being behind (wallets audit, status).
BILLING_GRACE = timedelta(minutes=2)


def deduct(run: RunContext[None]) -> BillingReport:
    """`coins deduct`: bill every ongoing call up to `now`; end those that cannot pay."""
    return bill_and_settle(run)


def bill_and_settle(run: RunContext[None], end_rules: EndRules | None = None) -> BillingReport:
    """Plan at `run.now`; with `run.apply`, charge, settle, and check conservation.

    With `end_rules`, only the calls they end are billed and settled (call cleanup).
    """
    session, now, settings = run.session, run.now, run.settings
    planned = plan_query(now, settings, end_rules)
    if not run.apply:
        dry_run = report(session, planned, end_rules)
        dry_run.charged = spool_charged(session, planned)
        return dry_run

    plan = StoredPlan(session, planned)
    replanned, held = 0, list[HeldCall]()
    if not is_sqlite(session):
        # the row locks, held until the runner commits
        replanned, held = locking.lock_and_replan(session, now, settings, end_rules, plan)
    billed = report(session, plan.table, end_rules, replanned)
    billed.held, billed.held_calls = held, len(held)
    # what the app wrote of the half-ended calls skipped, before it can end them again
    half_ended.record(
        session,
        run.run_id,
        sa.select(plan.call_id).where(plan.problem == Problem.HALF_ENDED.value),
    )
    _apply(run, plan, billed)
    plan.drop()
    return billed


def _apply(run: RunContext[None], plan: StoredPlan, billed: BillingReport) -> None:
    """Charge and settle the stored plan chunk by chunk; check conservation."""
    session, now = run.session, run.now
    before = conservation.holdings(session, plan)
    spend_coins, earn_money = 0, Decimal("0.00")
    cache_updates = billed.cache_updates if run.settings.redis_url is not None else None
    for first, last in plan.chunks():
        chunk = plan.call_id.between(first, last)
        spend_coins += charging.charge_chunk(session, now, plan, chunk)
        charging.write_calls(session, now, plan, chunk, cache_updates)
    # chunks of the calls that end only: each settlement statement finds the listeners'
    # wallets by a scan of user_wallets, so as few of them as CHUNK_SIZE allows (plan.py)
    for first, last in plan.chunks(plan.ends.is_(True)):
        earn_money += settlement.settle(
            session, now, plan, plan.call_id.between(first, last), run.run_id
        )
    settlement.free_parties(session, now, plan)
    conservation.check_conservation(
        planned_coins=billed.coins_charged,
        planned_paise=rupees_to_paise(billed.listener_earnings),
        before=before,
        after=conservation.holdings(session, plan),
        spend_coins_written=spend_coins,
        earn_money_written=earn_money,
    )


@dataclass(frozen=True)
class CallCounts:
    """The calls in a plan's scope at `now`, counted instead of planned (for `status`)."""

    owing: int  # owe coins: coin deduction charges each, or ends it when unpaid
    expired: int  # an end rule holds: call cleanup ends each
    unbillable: int  # a Problem: both jobs skip them


def count_calls(
    session: Session, now: datetime, settings: Settings, *, end_rules: EndRules | None = None
) -> CallCounts:
    """Counted over the plan's own rows (`call_rows`): the same rules, without
    allocating balances, which decide how much is charged but not whether a call owes."""
    rows = call_rows(now, settings, end_rules)
    billable = rows.c.problem.is_(None)

    def count(where: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(sa.case((where, 1), else_=0)), 0)

    owing, expired, unbillable = session.execute(
        sa.select(
            count(sa.and_(billable, rows.c.owed > 0)),
            count(sa.and_(billable, rows.c.expired != 0)),
            count(~billable),
        )
    ).one()
    return CallCounts(int(owing), int(expired), int(unbillable))
