"""The billing plan (SPEC §4, §5, §9): one SQL query over the ongoing calls that computes
for each call the coins owed, what the caller's balance covers, whether the call ends and
what its listener earns. A dry-run selects it; a real run stores it (`StoredPlan`) and
applies it chunk by chunk.

Where the SPEC is silent (several calls of one caller, coins_spent off whole minutes,
the rows billing cannot bill and skips, absurd badge rates, a future start_time), the
decisions are in docs/decisions.md#billing; `Problem` names the kinds of skipped rows.
The checks are in the plan's first step, so a dry-run and `status` see exactly the calls
a real run skips, and no statement computes a value past a column's limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.billing import rules
from saathii_ops.billing.money import MONEY_MAX_PAISE, paise_of
from saathii_ops.billing.problems import Problem
from saathii_ops.db.calls import CallStatus
from saathii_ops.db.engine import is_sqlite
from saathii_ops.db.sql import elapsed_seconds, local_date
from saathii_ops.db.tables import listener_badges as badges
from saathii_ops.db.tables import ops_settlements as settlements
from saathii_ops.db.tables import user_calls as calls
from saathii_ops.db.tables import user_wallets as wallets
from saathii_ops.jobs.badges import one_row_each
from saathii_ops.settings import Settings

# Rows per chunk of the apply phase: bounds each statement's work and RETURNING. Each
# chunk's statements join the plan to user_calls and user_wallets by a scan of the whole
# table (a hash join: cheaper than an index probe per row), so a chunk pays a scan of each;
# at 5,000 a 200,000-call run scanned them 40 times (10.5 s of its 21 s in those two
# updates), at 50,000 4 times (6.3 s). A chunk's statement stays ~1-2 s, far inside the
# statement timeout, and its RETURNING a few MB.
CHUNK_SIZE = 50_000

# A rule that ends a call (call cleanup): a predicate over a user_calls-shaped
# FROM (columns call_id, user_id, listener_id, start_time).
EndRule = Callable[[sa.FromClause], sa.ColumnElement[bool]]
EndRules = Mapping[str, EndRule]


class StoredPlan:
    """A real run's plan, stored for the run's transaction in a temporary table: one row
    per call, the columns of the plan's query. Charging, locking, settlement and the
    conservation check read it through these columns."""

    call_id = sa.Column("call_id", sa.Integer, primary_key=True, autoincrement=False)
    caller_id = sa.Column("caller_id", sa.Integer)
    listener_id = sa.Column("listener_id", sa.Integer)
    call_type = sa.Column("call_type", sa.String(10))
    wallet_id = sa.Column("wallet_id", sa.Integer)
    party = sa.Column("party", sa.BigInteger)  # the calls sharing one balance: the caller
    problem = sa.Column("problem", sa.String(40))  # a Problem; NULL when the call can be billed
    coins_spent = sa.Column("coins_spent", sa.BigInteger)  # as the plan saw it
    balance = sa.Column("balance", sa.BigInteger)  # the caller's balance as the plan saw it (>= 0)
    charge = sa.Column("charge", sa.BigInteger)
    minutes = sa.Column("minutes", sa.BigInteger)
    unpaid = sa.Column("unpaid", sa.Boolean)  # owes more than the balance covers
    expired = sa.Column("expired", sa.Integer)  # bit mask of the end rules that hold
    ends = sa.Column("ends", sa.Boolean)
    duration_seconds = sa.Column("duration_seconds", sa.BigInteger)
    duration_minutes = sa.Column("duration_minutes", sa.BigInteger)
    rate_paise = sa.Column("rate_paise", sa.BigInteger)  # the listener's rate, for a call that ends
    paid_minutes = sa.Column("paid_minutes", sa.BigInteger)
    earnings_paise = sa.Column("earnings_paise", sa.BigInteger)
    # PostgreSQL: another session held the call's row when the run locked the calls
    held_elsewhere = sa.Column("held_elsewhere", sa.Boolean)
    earn_transaction_id = sa.Column("earn_transaction_id", sa.Integer)  # set by settlement

    table = sa.Table(
        "saathii_billing_plan",
        sa.MetaData(),
        call_id,
        caller_id,
        listener_id,
        call_type,
        wallet_id,
        party,
        problem,
        coins_spent,
        balance,
        charge,
        minutes,
        unpaid,
        expired,
        ends,
        duration_seconds,
        duration_minutes,
        rate_paise,
        paid_minutes,
        earnings_paise,
        held_elsewhere,
        earn_transaction_id,
        prefixes=["TEMPORARY"],
    )

    def __init__(self, session: Session, planned: sa.Subquery) -> None:
        """Store `planned` (the plan's query); on PostgreSQL with statistics for the
        statements that join it."""
        self.session = session
        self.table.create(session.connection())
        self.insert(planned)
        if not is_sqlite(session):
            session.execute(sa.text(f"ANALYZE {self.table.name}"))

    def insert(self, planned: sa.Subquery) -> None:
        self.session.execute(
            sa.insert(self.table).from_select(list(planned.c.keys()), sa.select(planned))
        )

    def acting(self) -> sa.ColumnElement[bool]:
        """The call is charged or ends: the run changes its rows."""
        return sa.or_(self.charge > 0, self.ends.is_(True))

    def chunks(self, where: sa.ColumnElement[bool] | None = None) -> list[tuple[int, int]]:
        """(first, last) call_id of each run of CHUNK_SIZE plan rows (those `where` holds
        for, when given), in call_id order."""
        numbering = sa.select(
            self.call_id,
            ((sa.func.row_number().over(order_by=self.call_id) - 1) // CHUNK_SIZE).label("chunk"),
        )
        if where is not None:
            numbering = numbering.where(where)
        numbered = numbering.subquery()
        rows = self.session.execute(
            sa.select(sa.func.min(numbered.c.call_id), sa.func.max(numbered.c.call_id))
            .group_by(numbered.c.chunk)
            .order_by(numbered.c.chunk)
        ).all()
        return [(first, last) for first, last in rows]

    def drop(self) -> None:
        self.table.drop(self.session.connection())


def party(call: sa.FromClause) -> sa.ColumnElement[int]:
    """A caller's calls share the balance; a call without caller is alone."""
    return sa.func.coalesce(call.c.user_id, -call.c.call_id)


def _expired_mask(call: sa.FromClause, end_rules: EndRules) -> sa.ColumnElement[int]:
    """Bit i set when the i-th end rule holds."""
    mask: sa.ColumnElement[int] = sa.literal(0, sa.Integer)
    for bit, rule in enumerate(end_rules.values()):
        mask = mask + sa.case((rule(call), 1 << bit), else_=0)
    return mask


def _in_cleanup_scope(call: sa.FromClause, end_rules: EndRules) -> sa.ColumnElement[bool]:
    """The call has expired, or its caller has another ongoing call that has:
    billing "exactly as coin deduction would" shares the caller's balance among them."""
    other = calls.alias("expired_call")
    expired_callers = sa.select(other.c.user_id).where(
        other.c.status == CallStatus.ONGOING, sa.or_(*(rule(other) for rule in end_rules.values()))
    )
    return sa.or_(*(rule(call) for rule in end_rules.values()), call.c.user_id.in_(expired_callers))


# --- the plan's first step: each call, its problem and its bounds -------------------


def call_rows(
    now: datetime,
    settings: Settings,
    end_rules: EndRules | None,
    *,
    lock: bool = False,
    parties: sa.Select[Any] | None = None,
) -> sa.CTE:
    """The plan's first step: each ongoing call in scope with its problem (NULL when it
    can be billed), rate, coins spent, coins owed at `now`, the caller's balance, the
    listener's rate in paise and the mask of the end rules that hold. `parties`: only
    these callers' calls (planned again under the run's locks, which `lock` extends to
    their calls).

    Every value a later step writes is bounded here: a call whose duration,
    earnings or listener's wallet would overflow a column has a problem, and
    nothing that could overflow is computed for it.
    """
    scope = _scope(now, settings, end_rules, lock=lock, parties=parties)
    facts = _call_facts(scope, settings, end_rules)
    bounded = _bounded(facts)
    return sa.select(
        bounded,
        sa.case((bounded.c.problem.is_(None), bounded.c.due - bounded.c.spent)).label("owed"),
    ).cte("call_rows")


def _scope(
    now: datetime,
    settings: Settings,
    end_rules: EndRules | None,
    *,
    lock: bool,
    parties: sa.Select[Any] | None,
) -> sa.CTE:
    """The ongoing calls in scope, with the time elapsed, the coin rate and coins spent."""
    c = calls.alias("c")
    scope_query = sa.select(
        c.c.call_id,
        c.c.user_id,
        c.c.listener_id,
        c.c.call_type,
        c.c.start_time,
        c.c.end_time,
        elapsed_seconds(now, c.c.start_time).label("elapsed"),
        rules.coin_rate(c.c.call_type, settings).label("rate"),
        sa.func.coalesce(c.c.coins_spent, 0).label("spent"),
    ).where(c.c.status == CallStatus.ONGOING)
    if end_rules is not None:
        scope_query = scope_query.where(_in_cleanup_scope(c, end_rules))
    if parties is not None:
        scope_query = scope_query.where(party(c).in_(parties))
    if lock:
        scope_query = scope_query.with_for_update(of=c, skip_locked=True)
    # MATERIALIZED: each expression is computed once per call, not once per use (an
    # inlined CTE repeats its expressions wherever the next step uses them)
    return scope_query.cte("scope").prefix_with("MATERIALIZED")


def _call_facts(scope: sa.CTE, settings: Settings, end_rules: EndRules | None) -> sa.CTE:
    """Each call of `scope` with its row's problem, coins due, the listener's rate and
    money in paise, the caller's wallet and balance, its party and expired mask."""
    elapsed, rate, spent = scope.c.elapsed, scope.c.rate, scope.c.spent
    badge = _badges_of(scope, settings)
    listener_wallet = wallets.alias("listener_wallet")
    rate_paise = rules.listener_rate_paise(badge, scope.c.call_type, settings)
    row_problem = _first_problem(
        (scope.c.end_time.is_not(None), Problem.HALF_ENDED),
        (sa.exists().where(settlements.c.call_id == scope.c.call_id), Problem.SETTLED_BEFORE),
        (rate.is_(None), Problem.UNKNOWN_CALL_TYPE),
        (spent < 0, Problem.NEGATIVE_COINS_SPENT),
        (scope.c.listener_id.is_(None), Problem.NO_LISTENER),
        (elapsed.is_(None), Problem.START_TIME_NOT_FINITE),
        (elapsed > rules.INT_MAX, Problem.START_TIME_OUT_OF_RANGE),
        (spent // rate > rules.MAX_CALL_MINUTES, Problem.COINS_SPENT_OUT_OF_RANGE),
        (
            sa.or_(
                rate_paise < 0, rate_paise > rules.absurd_rate_paise(scope.c.call_type, settings)
            ),
            Problem.BAD_BADGE_RATE,
        ),
    )
    return (
        sa.select(
            scope.c.call_id,
            scope.c.user_id.label("caller_id"),
            scope.c.listener_id,
            scope.c.call_type,
            scope.c.start_time,
            wallets.c.wallet_id,
            row_problem.label("row_problem"),
            rate,
            spent,
            elapsed,
            rules.coins_due(rate, elapsed).label("due"),
            rate_paise.label("rate_paise"),
            paise_of(listener_wallet.c.withdrawable_money).label("listener_money_paise"),
            # a negative balance counts as 0; no wallet is a balance of 0
            sa.case((wallets.c.balance_coins > 0, wallets.c.balance_coins), else_=0).label(
                "balance"
            ),
            party(scope).label("party"),
            _expired_mask(scope, end_rules or {}).label("expired"),
        )
        .select_from(
            scope.outerjoin(wallets, wallets.c.user_id == scope.c.user_id)
            .outerjoin(listener_wallet, listener_wallet.c.user_id == scope.c.listener_id)
            .outerjoin(
                badge,
                rules.listener_badge_join(badge, scope.c.listener_id, scope.c.start_time, settings),
            )
        )
        .cte("call_facts")
        .prefix_with("MATERIALIZED")
    )


def _badges_of(scope: sa.CTE, settings: Settings) -> sa.Subquery:
    """One badge row per listener and day (the app's table may hold two), of the calls'
    listeners and days: a few rows through the table's key, not a scan of every day."""
    return one_row_each(
        sa.tuple_(badges.c.listener_id, badges.c.date).in_(
            sa.select(scope.c.listener_id, local_date(scope.c.start_time, settings.timezone))
        ),
        "badge",
    )


def _first_problem(*checks: tuple[sa.ColumnElement[bool], Problem]) -> sa.ColumnElement[str]:
    """The Problem of the first check that holds; NULL when none does."""
    return sa.case(*((holds, problem.value) for holds, problem in checks))


def _bounded(facts: sa.CTE) -> sa.CTE:
    """`facts` with the call's problem: its row's, or earnings past NUMERIC(12,2)."""
    # The most the call can pay its listener: every minute paid or due at the rate
    # (bounded by the checks before, so the product fits a BIGINT).
    most_paid_minutes = sa.case((facts.c.spent > facts.c.due, facts.c.spent), else_=facts.c.due)
    most_earned = sa.case(
        (facts.c.row_problem.is_(None), facts.c.rate_paise * (most_paid_minutes // facts.c.rate)),
        else_=0,
    )
    fits = most_earned <= MONEY_MAX_PAISE
    # what all of the listener's calls in scope can credit to their wallet at most
    listener_credit = sa.func.sum(sa.case((fits, most_earned), else_=0)).over(
        partition_by=facts.c.listener_id
    )
    bound_problem = _first_problem(
        (~fits, Problem.EARNINGS_OUT_OF_RANGE),
        (
            sa.func.coalesce(facts.c.listener_money_paise, 0) + listener_credit > MONEY_MAX_PAISE,
            Problem.LISTENER_WALLET_OVERFLOW,
        ),
    )
    return sa.select(
        facts, sa.func.coalesce(facts.c.row_problem, bound_problem).label("problem")
    ).cte("call_bounds")


# --- the plan ------------------------------------------------------------------


def plan_query(
    now: datetime,
    settings: Settings,
    end_rules: EndRules | None,
    *,
    lock: bool = False,
    parties: sa.Select[Any] | None = None,
) -> sa.Subquery:
    """Every change of the run, one row per call, with the columns of StoredPlan.

    Without end rules (coin deduction): every ongoing call that is charged,
    ends, or cannot be billed. With end rules (call cleanup): the calls that
    have expired by any rule. (`lock`, `parties`: see `call_rows`.)
    """
    rows = call_rows(now, settings, end_rules, lock=lock, parties=parties)
    allocation = _allocation(rows)
    charge = sa.func.coalesce(allocation.c.charge, 0)
    spent_after = rows.c.spent + charge
    billable_row = rows.c.problem.is_(None)
    unpaid = sa.and_(billable_row, rows.c.owed > 0, charge < rows.c.owed)
    if end_rules is None:
        ends = unpaid
        selected = sa.or_(~billable_row, charge > 0, unpaid)
    else:
        ends = sa.and_(billable_row, rows.c.expired != 0)
        selected = rows.c.expired != 0
    rate_paise = rows.c.rate_paise
    paid_minutes = rules.paid_minutes(spent_after, rows.c.rate)
    earnings_paise = sa.case((ends, rate_paise * paid_minutes), else_=0)
    minutes = sa.case(
        (billable_row, paid_minutes - rules.paid_minutes(rows.c.spent, rows.c.rate)), else_=0
    )
    return (
        sa.select(
            rows.c.call_id,
            rows.c.caller_id,
            rows.c.listener_id,
            rows.c.call_type,
            rows.c.wallet_id,
            rows.c.party,
            rows.c.problem,
            rows.c.spent.label("coins_spent"),
            rows.c.balance,
            charge.label("charge"),
            minutes.label("minutes"),
            unpaid.label("unpaid"),
            rows.c.expired,
            ends.label("ends"),
            rules.duration_seconds(rows.c.elapsed).label("duration_seconds"),
            rules.duration_minutes(rows.c.elapsed).label("duration_minutes"),
            sa.case((ends, rate_paise), else_=None).label("rate_paise"),
            sa.case((ends, paid_minutes), else_=None).label("paid_minutes"),
            earnings_paise.label("earnings_paise"),
        )
        .select_from(rows.outerjoin(allocation, allocation.c.call_id == rows.c.call_id))
        .where(selected)
        .subquery("planned")
    )


def _allocation(rows: sa.CTE) -> sa.CTE:
    """What each billable call is charged: a caller's balance is shared among their calls,
    the oldest first (a recursive CTE over each caller's calls in start_time order)."""
    billable = (
        sa.select(
            rows.c.call_id,
            rows.c.party,
            rows.c.owed,
            rows.c.spent,
            rows.c.rate,
            rows.c.balance,
            sa.func.row_number()
            .over(partition_by=rows.c.party, order_by=(rows.c.start_time, rows.c.call_id))
            .label("rank"),
        )
        .where(rows.c.problem.is_(None))
        .cte("billable")
    )
    first_charge = rules.affordable_charge(
        billable.c.owed, billable.c.spent, billable.c.rate, billable.c.balance
    )
    allocation = (
        sa.select(
            billable.c.call_id,
            billable.c.party,
            billable.c.rank,
            first_charge.label("charge"),
            sa.cast(billable.c.balance - first_charge, sa.BigInteger).label("remaining"),
        )
        .where(billable.c.rank == 1)
        .cte("allocation", recursive=True)
    )
    next_charge = rules.affordable_charge(
        billable.c.owed, billable.c.spent, billable.c.rate, allocation.c.remaining
    )
    return allocation.union_all(
        sa.select(
            billable.c.call_id,
            billable.c.party,
            billable.c.rank,
            next_charge,
            sa.cast(allocation.c.remaining - next_charge, sa.BigInteger),
        ).select_from(
            allocation.join(
                billable,
                sa.and_(
                    billable.c.party == allocation.c.party,
                    billable.c.rank == allocation.c.rank + 1,
                ),
            )
        )
    )
