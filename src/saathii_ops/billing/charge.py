"""Coin deduction (SPEC §4): what every ongoing call owes at `now`, charging it,
and ending (through settlement) the calls their callers cannot pay for.

One plan, two uses (SPEC §9). `_plan` is one SQL query over the ongoing calls
that computes for each call the coins owed, what the caller's balance covers,
whether the call ends and what its listener earns. A dry-run selects it. A real
run stores it in a temporary table, applies it chunk by chunk with guarded
set-based statements, and checks conservation before the runner commits.

Where the SPEC is silent (several calls of one caller, coins_spent off whole minutes,
the rows billing cannot bill and skips, absurd badge rates, a future start_time), the
decisions are in docs/decisions.md#billing; PROBLEMS names the kinds of skipped rows.
The checks are in the plan's first step, so a dry-run and `status` see exactly the calls
a real run skips, and no statement computes a value past a column's limit.

Concurrency on PostgreSQL (real run): the plan is made without locks, so that
row locks are held only while the plan is applied (the app waits for them).
Then the rows the plan changes are locked, each kind in one order: the wallets
of both parties in wallet_id order, the calls, the user_status rows of the
parties of the calls that end in user_id order; all FOR UPDATE SKIP LOCKED, so
a run never waits for a row another session holds (the app's statement, a DBA's
open transaction) and, waiting for nothing, cannot deadlock. A call whose
caller's wallet, or (when it ends) listener's wallet or parties' user_status,
another session holds is left out with all the calls of its caller (they share
the balance); a call whose own row another session holds (the app ending it) is
left out and its caller's other calls are planned again without it. Each is named
in the report as held; the next run bills it, catching up every minute it
missed. A caller whose calls or balance changed between planning and locking
(another run, the app) is planned again, now under the locks. Every statement is
still guarded (status, the coins_spent the plan saw, balance >= charge), and a
statement that does not change exactly the planned rows rolls the whole run back.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.billing import settlement
from saathii_ops.billing.settlement import expect, paise_to_decimal
from saathii_ops.db.engine import is_sqlite
from saathii_ops.db.models import Money, Settlement, UserCall, UserTransaction, UserWallet, table
from saathii_ops.db.sql import elapsed_seconds, local_date
from saathii_ops.jobs import half_ended
from saathii_ops.jobs.badges import one_row_each
from saathii_ops.output.text import plural
from saathii_ops.reports import INTERNAL, Report, SpooledRecords
from saathii_ops.runtime.context import RunContext
from saathii_ops.settings import Settings

calls = table(UserCall)
wallets = table(UserWallet)
ledger = table(UserTransaction)
settlements = table(Settlement)

# Rows per chunk of the apply phase: bounds each statement's work and RETURNING.
CHUNK_SIZE = 5000

# Coin deduction runs every minute, so a call may owe a minute that started
# less than this long ago without billing being behind (wallets audit, status).
BILLING_GRACE = timedelta(minutes=2)

INSUFFICIENT_BALANCE = "insufficient_balance"
HALF_ENDED = "half_ended"
PROBLEMS = {
    HALF_ENDED: "end_time is set: half-ended by the app",
    "settled_before": "settled by saathii-ops before (the app changed it since)",
    "unknown_call_type": "unknown call_type",
    "negative_coins_spent": "coins_spent is negative",
    "no_listener": "no listener_id",
    "start_time_out_of_range": "start_time is so long ago that duration_seconds would overflow INT",
    "start_time_not_finite": "start_time is not a finite time",
    "coins_spent_out_of_range": "coins_spent pays for more minutes than any call can last",
    "bad_badge_rate": "the listener's listener_badges row has a negative or absurd rate",
    "earnings_out_of_range": "the listener's earnings would overflow NUMERIC(12,2)",
    "listener_wallet_overflow": "the listener's withdrawable_money would overflow NUMERIC(12,2)",
}

# A badge rate above this many times the highest rate our badge table pays is absurd.
ABSURD_RATE_FACTOR = 10

# A rule that ends a call (call cleanup): a predicate over a user_calls-shaped
# FROM (columns call_id, user_id, listener_id, start_time).
EndRule = Callable[[sa.FromClause], sa.ColumnElement[bool]]
EndRules = Mapping[str, EndRule]


class ConservationError(RuntimeError):
    """Coins or rupees would be created or lost: the run must not commit."""


@dataclass
class EndedCall:
    """A call the run ended, in full: the report keeps every one."""

    call_id: int
    caller_id: int | None
    listener_id: int | None
    call_type: str
    coins_charged: int
    minutes_charged: int
    coins_spent: int  # after this run
    reasons: list[str]
    listener_earnings: Decimal  # rupees


@dataclass
class SkippedCall:
    call_id: int
    problem: str


HELD = "held by another session; next run"


@dataclass
class HeldCall:
    """A call left for the next run: a row it needs is held by another session."""

    call_id: int
    held: str  # the row held, e.g. "the caller's wallet"
    outcome: str = HELD


@dataclass
class BillingReport(Report):
    """Counts of the whole run; the calls that matter (ended, skipped) in full.

    The calls only charged are counted, never listed, by a real run: a report (and
    the cron log entry and the audit row made from it) stays the same size however
    many calls are ongoing. A dry-run, which must name every id it would change,
    lists them in `charged`: a file, which `--json` writes into its document a line at
    a time.
    """

    calls_charged: int
    coins_charged: int
    minutes_charged: int
    calls_ended: int
    listener_earnings: Decimal
    skipped_calls: int
    half_ended_calls: int  # of the skipped calls: the app set their end_time
    # calls whose caller's rows changed between planning and locking: planned again
    replanned_calls: int = 0
    # calls left for the next run: another session holds a row they need (not a failure)
    held_calls: int = 0
    ended: list[EndedCall] = field(default_factory=list)
    skipped: list[SkippedCall] = field(default_factory=list)
    held: list[HeldCall] = field(default_factory=list)
    # a dry-run: every call it would charge (call_id, caller_id, coins_charged,
    # minutes_charged), spooled to a file, not held in memory; only --json lists them.
    # A real run: None (it counts them)
    charged: SpooledRecords | None = field(default=None, compare=False)
    # For the Redis call cache only (SPEC §14), collected only when a Redis URL is
    # configured: (call_id, coins_spent after the run) of each call charged, flat in
    # one array of 8-byte integers. Not part of the report's output.
    cache_updates: array[int] = field(
        default_factory=lambda: array("q"), repr=False, compare=False, metadata=INTERNAL
    )

    @property
    def failed_rows(self) -> int:
        return self.skipped_calls

    def found(self) -> str | None:
        if not self.skipped_calls:
            return None
        text = f"skipped {plural(self.skipped_calls, 'call')} it could not bill"
        if self.half_ended_calls:
            text += f" ({self.half_ended_calls} half-ended by the app)"
        return text

    def headline(self) -> str:
        text = (
            f"charged {self.calls_charged} calls {self.coins_charged} coins "
            f"({self.minutes_charged} minutes), ended {self.calls_ended} "
            f"(listeners earned {self.listener_earnings}), skipped {self.skipped_calls}"
        )
        if self.half_ended_calls:
            text += f" ({self.half_ended_calls} half-ended)"
        if self.replanned_calls:
            text += f", replanned {self.replanned_calls}"
        if self.held_calls:
            text += f", left {self.held_calls} held by another session for the next run"
        return text


# --- the rules -----------------------------------------------------------------


def coin_rate(call_type: sa.ColumnElement[str | None], settings: Settings) -> sa.ColumnElement[int]:
    """r, coins per minute; NULL for an unknown call_type."""
    rates = settings.coins_per_minute
    return sa.case((call_type == "audio", rates.audio), (call_type == "video", rates.video))


def coins_due(rate: sa.ColumnElement[int], elapsed: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """r * (⌊e / 60⌋ + 1), every started minute; nothing before the call starts.

    (For e < 0 the SPEC's formula gives at most 0; `//` truncates, so e < 0 is
    handled apart.)
    """
    return sa.case((elapsed < 0, 0), else_=rate * (elapsed // 60 + 1))


def affordable_charge(
    owed: sa.ColumnElement[int],
    spent: sa.ColumnElement[int],
    rate: sa.ColumnElement[int],
    available: sa.ColumnElement[int],
) -> sa.ColumnElement[int]:
    """What to charge a call that owes `owed` from a balance of `available` (≥ 0)."""
    whole_minutes = rate * ((spent + available) // rate) - spent  # < owed when available < owed
    return sa.cast(
        sa.case(
            (owed <= 0, 0),
            (available >= owed, owed),
            (whole_minutes > 0, whole_minutes),
            else_=0,
        ),
        sa.BigInteger,
    )


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
        other.c.status == "ongoing", sa.or_(*(rule(other) for rule in end_rules.values()))
    )
    return sa.or_(*(rule(call) for rule in end_rules.values()), call.c.user_id.in_(expired_callers))


# --- the plan ------------------------------------------------------------------

PLAN = sa.Table(
    "saathii_billing_plan",
    sa.MetaData(),
    sa.Column("call_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("caller_id", sa.Integer),
    sa.Column("listener_id", sa.Integer),
    sa.Column("call_type", sa.String(10)),
    sa.Column("wallet_id", sa.Integer),
    sa.Column("party", sa.BigInteger),  # the calls sharing one balance: the caller
    sa.Column("problem", sa.String(40)),  # why the call cannot be billed; NULL when it can
    sa.Column("coins_spent", sa.BigInteger),  # as the plan saw it
    sa.Column("balance", sa.BigInteger),  # the caller's balance as the plan saw it (>= 0)
    sa.Column("charge", sa.BigInteger),
    sa.Column("minutes", sa.BigInteger),
    sa.Column("unpaid", sa.Boolean),  # owes more than the balance covers
    sa.Column("expired", sa.Integer),  # bit mask of the end rules that hold
    sa.Column("ends", sa.Boolean),
    sa.Column("duration_seconds", sa.BigInteger),
    sa.Column("duration_minutes", sa.BigInteger),
    sa.Column("rate_paise", sa.BigInteger),  # the listener's rate, for a call that ends
    sa.Column("paid_minutes", sa.BigInteger),
    sa.Column("earnings_paise", sa.BigInteger),
    sa.Column("locked", sa.Boolean),  # PostgreSQL: the run holds the call's row lock
    sa.Column("earn_transaction_id", sa.Integer),  # set by settlement
    prefixes=["TEMPORARY"],
)


def _party(call: sa.FromClause) -> sa.ColumnElement[int]:
    """A caller's calls share the balance; a call without caller is alone."""
    return sa.func.coalesce(call.c.user_id, -call.c.call_id)


def _call_rows(
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
    c = calls.alias("c")
    scope_query = sa.select(
        c.c.call_id,
        c.c.user_id,
        c.c.listener_id,
        c.c.call_type,
        c.c.start_time,
        c.c.end_time,
        elapsed_seconds(now, c.c.start_time).label("elapsed"),
        coin_rate(c.c.call_type, settings).label("rate"),
        sa.func.coalesce(c.c.coins_spent, 0).label("spent"),
    ).where(c.c.status == "ongoing")
    if end_rules is not None:
        scope_query = scope_query.where(_in_cleanup_scope(c, end_rules))
    if parties is not None:
        scope_query = scope_query.where(_party(c).in_(parties))
    if lock:
        scope_query = scope_query.with_for_update(of=c, skip_locked=True)
    # MATERIALIZED: each expression is computed once per call, not once per use (an
    # inlined CTE repeats its expressions wherever the next step uses them)
    scope = scope_query.cte("scope").prefix_with("MATERIALIZED")

    elapsed, rate, spent = scope.c.elapsed, scope.c.rate, scope.c.spent
    # one badge row per listener and day (the app's table may hold two), of the calls'
    # listeners and days: a few rows through the table's key, not a scan of every day
    b = settlement.badges
    badge = one_row_each(
        sa.tuple_(b.c.listener_id, b.c.date).in_(
            sa.select(scope.c.listener_id, local_date(scope.c.start_time, settings.timezone))
        ),
        "badge",
    )
    listener_wallet = wallets.alias("listener_wallet")
    rate_paise = settlement.listener_rate_paise(badge, scope.c.call_type, settings)
    facts = (
        sa.select(
            scope.c.call_id,
            scope.c.user_id.label("caller_id"),
            scope.c.listener_id,
            scope.c.call_type,
            scope.c.start_time,
            wallets.c.wallet_id,
            sa.case(
                (scope.c.end_time.is_not(None), HALF_ENDED),
                (
                    sa.exists().where(settlements.c.call_id == scope.c.call_id),
                    "settled_before",
                ),
                (rate.is_(None), "unknown_call_type"),
                (spent < 0, "negative_coins_spent"),
                (scope.c.listener_id.is_(None), "no_listener"),
                (elapsed.is_(None), "start_time_not_finite"),
                (elapsed > settlement.INT_MAX, "start_time_out_of_range"),
                (spent // rate > settlement.MAX_CALL_MINUTES, "coins_spent_out_of_range"),
                (
                    sa.or_(
                        rate_paise < 0, rate_paise > _absurd_rate_paise(scope.c.call_type, settings)
                    ),
                    "bad_badge_rate",
                ),
            ).label("row_problem"),
            rate,
            spent,
            elapsed,
            coins_due(rate, elapsed).label("due"),
            rate_paise.label("rate_paise"),
            settlement.paise(listener_wallet.c.withdrawable_money).label("listener_money_paise"),
            # a negative balance counts as 0; no wallet is a balance of 0
            sa.case((wallets.c.balance_coins > 0, wallets.c.balance_coins), else_=0).label(
                "balance"
            ),
            _party(scope).label("party"),
            _expired_mask(scope, end_rules or {}).label("expired"),
        )
        .select_from(
            scope.outerjoin(wallets, wallets.c.user_id == scope.c.user_id)
            .outerjoin(listener_wallet, listener_wallet.c.user_id == scope.c.listener_id)
            .outerjoin(
                badge,
                settlement.listener_badge_join(
                    badge, scope.c.listener_id, scope.c.start_time, settings
                ),
            )
        )
        .cte("call_facts")
        .prefix_with("MATERIALIZED")
    )

    # The most the call can pay its listener: every minute paid or due at the rate
    # (bounded by the checks above, so the product fits a BIGINT).
    most_paid_minutes = sa.case((facts.c.spent > facts.c.due, facts.c.spent), else_=facts.c.due)
    most_earned = sa.case(
        (facts.c.row_problem.is_(None), facts.c.rate_paise * (most_paid_minutes // facts.c.rate)),
        else_=0,
    )
    fits = most_earned <= settlement.MONEY_MAX_PAISE
    # what all of the listener's calls in scope can credit to their wallet at most
    listener_credit = sa.func.sum(sa.case((fits, most_earned), else_=0)).over(
        partition_by=facts.c.listener_id
    )
    bounded = sa.select(
        facts,
        sa.func.coalesce(
            facts.c.row_problem,
            sa.case(
                (~fits, "earnings_out_of_range"),
                (
                    sa.func.coalesce(facts.c.listener_money_paise, 0) + listener_credit
                    > settlement.MONEY_MAX_PAISE,
                    "listener_wallet_overflow",
                ),
            ),
        ).label("problem"),
    ).cte("call_bounds")
    return sa.select(
        bounded,
        sa.case((bounded.c.problem.is_(None), bounded.c.due - bounded.c.spent)).label("owed"),
    ).cte("call_rows")


def _absurd_rate_paise(
    call_type: sa.ColumnElement[str | None], settings: Settings
) -> sa.ColumnElement[int]:
    """Paise per minute above which a listener_badges rate is absurd, by call type."""
    table = settings.badge_rates
    tiers = (table.basic, table.bronze, table.silver, table.gold)
    audio = max(tier.audio for tier in tiers) * 100 * ABSURD_RATE_FACTOR
    video = max(tier.video for tier in tiers) * 100 * ABSURD_RATE_FACTOR
    return sa.case((call_type == "audio", int(audio)), else_=int(video))


def _plan(
    now: datetime,
    settings: Settings,
    end_rules: EndRules | None,
    *,
    lock: bool = False,
    parties: sa.Select[Any] | None = None,
) -> sa.Subquery:
    """Every change of the run, one row per call, with the columns of PLAN.

    Without end rules (coin deduction): every ongoing call that is charged,
    ends, or cannot be billed. With end rules (call cleanup): the calls that
    have expired by any rule. (`lock`, `parties`: see `_call_rows`.)
    """
    rows = _call_rows(now, settings, end_rules, lock=lock, parties=parties)
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
    first_charge = affordable_charge(
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
    next_charge = affordable_charge(
        billable.c.owed, billable.c.spent, billable.c.rate, allocation.c.remaining
    )
    allocation = allocation.union_all(
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
    paid_minutes = settlement.paid_minutes(spent_after, rows.c.rate)
    earnings_paise = sa.case((ends, rate_paise * paid_minutes), else_=0)
    minutes = sa.case(
        (
            billable_row,
            settlement.paid_minutes(spent_after, rows.c.rate)
            - settlement.paid_minutes(rows.c.spent, rows.c.rate),
        ),
        else_=0,
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
            settlement.duration_seconds(rows.c.elapsed).label("duration_seconds"),
            settlement.duration_minutes(rows.c.elapsed).label("duration_minutes"),
            sa.case((ends, rate_paise), else_=None).label("rate_paise"),
            sa.case((ends, paid_minutes), else_=None).label("paid_minutes"),
            earnings_paise.label("earnings_paise"),
        )
        .select_from(rows.outerjoin(allocation, allocation.c.call_id == rows.c.call_id))
        .where(selected)
        .subquery("planned")
    )


@dataclass(frozen=True)
class CallCounts:
    """The calls in a plan's scope at `now`, counted instead of planned (for `status`)."""

    owing: int  # owe coins: coin deduction charges each, or ends it when unpaid
    expired: int  # an end rule holds: call cleanup ends each
    unbillable: int  # a problem of PROBLEMS: both jobs skip them


def count_calls(
    session: Session, now: datetime, settings: Settings, *, end_rules: EndRules | None = None
) -> CallCounts:
    """Counted over the plan's own rows (`_call_rows`): the same rules, without
    allocating balances, which decide how much is charged but not whether a call owes."""
    rows = _call_rows(now, settings, end_rules)
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


# PostgreSQL, real run: the wallets ('wallet') and user_status rows ('status') the run
# holds, by user_id, so that the rows it could not lock are found by a join.
LOCKED = sa.Table(
    "saathii_billing_locked",
    sa.MetaData(),
    sa.Column("kind", sa.String(6), primary_key=True),
    sa.Column("user_id", sa.Integer, primary_key=True, autoincrement=False),
    prefixes=["TEMPORARY"],
)


def _acting() -> sa.ColumnElement[bool]:
    return sa.or_(PLAN.c.charge > 0, PLAN.c.ends.is_(True))


def _lock_rows(
    session: Session,
    kind: str,
    table_: sa.Table,
    order: sa.ColumnElement[Any],
    users: sa.Select[Any] | sa.CompoundSelect[Any],
) -> None:
    """Lock the rows of `table_` of `users` not locked yet, in `order`, FOR UPDATE SKIP
    LOCKED (never waiting), and note in LOCKED the users whose row the run now holds."""
    held_already = sa.select(LOCKED.c.user_id).where(LOCKED.c.kind == kind)
    locking = (
        sa.select(table_.c.user_id)
        .where(table_.c.user_id.in_(users), table_.c.user_id.not_in(held_already))
        .order_by(order)
        .with_for_update(of=table_, skip_locked=True)
        .subquery()
    )
    session.execute(
        sa.insert(LOCKED).from_select(
            ["kind", "user_id"], sa.select(sa.literal(kind, sa.String(6)), locking.c.user_id)
        )
    )


def _held_elsewhere(
    table_: sa.Table, kind: str, user: sa.ColumnElement[int | None]
) -> sa.ColumnElement[bool]:
    """`user` has a row in `table_` that the run could not lock: another session holds it."""
    return sa.and_(
        sa.exists().where(table_.c.user_id == user),
        ~sa.exists().where(LOCKED.c.kind == kind, LOCKED.c.user_id == user),
    )


def _lock_and_replan(
    session: Session, now: datetime, settings: Settings, end_rules: EndRules | None
) -> tuple[int, list[HeldCall]]:
    """PostgreSQL, once the plan is stored: lock what it changes; plan again, under the
    locks, the callers whose rows changed since it was made; leave out (and name) the
    calls that need a row another session holds. Returns how many planned calls were
    planned again, and the calls held.

    Every lock is taken FOR UPDATE SKIP LOCKED (the module's docstring): wallets of both
    parties first, in wallet_id order (listeners' wallets too: settlement credits them),
    then the calls, then the user_status rows of the parties of the calls that end, in
    user_id order (settlement clears their flags).
    """
    acting = _acting()
    LOCKED.create(session.connection())

    def lock_wallets() -> None:
        parties = sa.union(
            sa.select(PLAN.c.caller_id).where(acting), sa.select(PLAN.c.listener_id).where(acting)
        )
        _lock_rows(session, "wallet", wallets, wallets.c.wallet_id, parties)

    lock_wallets()
    session.execute(
        sa.update(PLAN)
        .where(
            PLAN.c.call_id.in_(
                sa.select(calls.c.call_id)
                .where(calls.c.call_id.in_(sa.select(PLAN.c.call_id).where(acting)))
                .with_for_update(of=calls, skip_locked=True)
            )
        )
        .values(locked=True)
    )
    # calls another session holds: planned again below, where their (locking) scope skips them
    held_call_ids = set(
        session.scalars(sa.select(PLAN.c.call_id).where(acting, PLAN.c.locked.is_not(True)))
    )

    replanned = _replan_changed(session, now, settings, end_rules)
    if replanned:
        lock_wallets()  # a call planned again may now charge or end: its parties' wallets
    ending = PLAN.c.ends.is_(True)
    status_parties = sa.union(
        sa.select(PLAN.c.caller_id).where(ending), sa.select(PLAN.c.listener_id).where(ending)
    )
    _lock_rows(session, "status", settlement.status, settlement.status.c.user_id, status_parties)

    needs_held_row = sa.case(
        (_held_elsewhere(wallets, "wallet", PLAN.c.caller_id), "the caller's wallet"),
        (
            sa.and_(ending, _held_elsewhere(wallets, "wallet", PLAN.c.listener_id)),
            "the listener's wallet",
        ),
        (
            sa.and_(ending, _held_elsewhere(settlement.status, "status", PLAN.c.caller_id)),
            "the caller's user_status",
        ),
        (
            sa.and_(ending, _held_elsewhere(settlement.status, "status", PLAN.c.listener_id)),
            "the listener's user_status",
        ),
    )
    blocked = sa.select(PLAN.c.party, needs_held_row.label("held")).where(acting).subquery()
    held_parties = dict(
        session.execute(
            sa.select(blocked.c.party, sa.func.min(blocked.c.held))
            .where(blocked.c.held.is_not(None))
            .group_by(blocked.c.party)
        ).all()
    )
    # a held call is planned again without it; once its holder let it go, it is back
    held_call_ids -= set(
        session.scalars(sa.select(PLAN.c.call_id).where(PLAN.c.call_id.in_(held_call_ids)))
    )
    held = dict.fromkeys(held_call_ids, "the call")
    if held_parties:
        # the caller's calls share its balance: all are left for the next run
        removed = session.execute(
            sa.delete(PLAN)
            .where(PLAN.c.party.in_(list(held_parties)))
            .returning(PLAN.c.call_id, PLAN.c.party, acting)
        ).all()
        held.update(
            (call_id, held_parties[party]) for call_id, party, was_acting in removed if was_acting
        )
    LOCKED.drop(session.connection())
    return replanned, [HeldCall(c, why) for c, why in sorted(held.items())]


def _replan_changed(
    session: Session, now: datetime, settings: Settings, end_rules: EndRules | None
) -> int:
    """Plan again, under the run's locks, the callers whose calls or balance changed since
    the plan was made, or one of whose calls another session holds (their plan skips
    it). Returns how many planned calls were planned again."""
    acting = _acting()
    balance = sa.func.coalesce(wallets.c.balance_coins, 0)
    changed = (
        sa.select(PLAN.c.party)
        .select_from(
            PLAN.outerjoin(calls, calls.c.call_id == PLAN.c.call_id).outerjoin(
                wallets, wallets.c.wallet_id == PLAN.c.wallet_id
            )
        )
        .where(
            acting,
            sa.or_(
                PLAN.c.locked.is_not(True),  # another session holds it: left out
                calls.c.status != "ongoing",
                calls.c.end_time.is_not(None),
                sa.func.coalesce(calls.c.coins_spent, 0) != PLAN.c.coins_spent,
                sa.case((balance > 0, balance), else_=0) != PLAN.c.balance,
            ),
        )
        .distinct()
    )
    stale = session.scalars(changed).all()
    if not stale:
        return 0
    replanned = session.execute(
        sa.delete(PLAN).where(PLAN.c.party.in_(stale)).returning(PLAN.c.call_id)
    ).all()
    # their wallets the run could lock stay as the plan sees them until commit (a caller
    # whose wallet another session holds is left out afterwards)
    again = _plan(
        now, settings, end_rules, lock=True, parties=sa.select(sa.func.unnest(list(stale)))
    )
    session.execute(sa.insert(PLAN).from_select(list(again.c.keys()), sa.select(again)))
    session.execute(sa.update(PLAN).where(PLAN.c.party.in_(stale), _acting()).values(locked=True))
    return len(replanned)


# --- the service ---------------------------------------------------------------


def deduct(run: RunContext[None]) -> BillingReport:
    """`coins deduct`: bill every ongoing call up to `now`; end those that cannot pay."""
    return bill_and_settle(run)


def bill_and_settle(run: RunContext[None], end_rules: EndRules | None = None) -> BillingReport:
    """Plan at `now`; with `apply`, charge, settle, and check conservation.

    With `end_rules`, only the calls they end are billed and settled (call cleanup).
    """
    session, now, settings, apply = run.session, run.now, run.settings, run.apply
    planned = _plan(now, settings, end_rules)
    if not apply:
        report = _report(session, planned, end_rules)
        report.charged = _spool_charged(session, planned)
        return report

    PLAN.create(session.connection())
    session.execute(sa.insert(PLAN).from_select(list(planned.c.keys()), sa.select(planned)))
    replanned, held = 0, list[HeldCall]()
    if not is_sqlite(session):
        # statistics for the statements that join the plan; then the row locks, held
        # until the runner commits
        session.execute(sa.text(f"ANALYZE {PLAN.name}"))
        replanned, held = _lock_and_replan(session, now, settings, end_rules)
    report = _report(session, PLAN, end_rules, replanned)
    report.held, report.held_calls = held, len(held)
    # what the app wrote of the half-ended calls skipped, before it can end them again
    half_ended.record(
        session, run.run_id, sa.select(PLAN.c.call_id).where(PLAN.c.problem == HALF_ENDED)
    )
    before = _holdings(session)
    spend_coins, earn_money = 0, Decimal("0.00")
    cache_updates = report.cache_updates if settings.redis_url is not None else None
    for first, last in _chunks(session):
        chunk = PLAN.c.call_id.between(first, last)
        spend_coins += _charge(session, now, chunk, cache_updates)
        earn_money += settlement.settle(session, now, PLAN, chunk, run.run_id).earn_money
    check_conservation(
        planned_coins=report.coins_charged,
        planned_paise=_paise(report.listener_earnings),
        before=before,
        after=_holdings(session),
        spend_coins_written=spend_coins,
        earn_money_written=earn_money,
    )
    PLAN.drop(session.connection())
    return report


def _spool_charged(session: Session, planned: sa.Subquery) -> SpooledRecords:
    """Every call the plan charges, in call_id order, read through a server-side cursor."""
    charged = SpooledRecords()
    rows = session.execute(
        sa.select(planned.c.call_id, planned.c.caller_id, planned.c.charge, planned.c.minutes)
        .where(planned.c.problem.is_(None), planned.c.charge > 0)
        .order_by(planned.c.call_id),
        execution_options={"yield_per": CHUNK_SIZE},
    )
    for call_id, caller_id, coins, minutes in rows:
        charged.add(
            {
                "call_id": call_id,
                "caller_id": caller_id,
                "coins_charged": int(coins),
                "minutes_charged": int(minutes),
            }
        )
    return charged


def _chunks(session: Session) -> list[tuple[int, int]]:
    """(first, last) call_id of each run of CHUNK_SIZE plan rows, in call_id order."""
    numbered = sa.select(
        PLAN.c.call_id,
        ((sa.func.row_number().over(order_by=PLAN.c.call_id) - 1) // CHUNK_SIZE).label("chunk"),
    ).subquery()
    rows = session.execute(
        sa.select(sa.func.min(numbered.c.call_id), sa.func.max(numbered.c.call_id))
        .group_by(numbered.c.chunk)
        .order_by(numbered.c.chunk)
    ).all()
    return [(first, last) for first, last in rows]


def _charge(
    session: Session, now: datetime, chunk: sa.ColumnElement[bool], cache_updates: array[int] | None
) -> int:
    """Charge the chunk's calls: wallets, calls' coins_spent, one 'spend' row per call;
    each charged call's (call_id, coins_spent) appended to `cache_updates` when given.

    Returns Σ coins_change of the rows written.
    """
    charged = sa.and_(chunk, PLAN.c.charge > 0)
    planned_calls, planned_wallets = session.execute(
        sa.select(sa.func.count(), sa.func.count(sa.distinct(PLAN.c.wallet_id))).where(charged)
    ).one()
    if not planned_calls:
        return 0

    per_wallet = (
        sa.select(PLAN.c.wallet_id, sa.func.sum(PLAN.c.charge).label("coins"))
        .where(charged)
        .group_by(PLAN.c.wallet_id)
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

    spent = sa.func.coalesce(calls.c.coins_spent, 0)
    add = (
        sa.update(calls)
        .where(
            calls.c.call_id == PLAN.c.call_id,
            charged,
            calls.c.status == "ongoing",
            spent == PLAN.c.coins_spent,  # nobody charged it since the plan
        )
        .values(coins_spent=spent + PLAN.c.charge, updated_at=now)
    )
    if cache_updates is None:
        expect("calls charged", session.connection().execute(add).rowcount, planned_calls)
    else:
        added = session.execute(add.returning(calls.c.call_id, calls.c.coins_spent)).all()
        expect("calls charged", len(added), planned_calls)
        for call_id, coins_spent in added:
            cache_updates.extend((call_id, coins_spent))

    written = settlement.write_ledger_rows(
        session,
        "spend",
        now,
        sa.select(PLAN.c.wallet_id, -PLAN.c.charge, sa.literal(Decimal("0.00"), Money))
        .where(charged)
        .order_by(PLAN.c.call_id),
    )
    expect("'spend' ledger rows written", len(written), planned_calls)
    return sum(row.coins_change for row in written)


# --- conservation --------------------------------------------------------------


@dataclass(frozen=True)
class Holdings:
    """What the plan's rows hold right now: the measure of conservation."""

    balance_coins: int  # Σ balance_coins of the wallets charged
    coins_spent: int  # Σ coins_spent of the calls charged
    withdrawable_money: Decimal  # Σ withdrawable_money of the listeners paid


def _holdings(session: Session) -> Holdings:
    charged = PLAN.c.charge > 0

    def total(column: sa.ColumnElement[Any], where: sa.ColumnElement[bool]) -> Any:
        return sa.select(sa.func.coalesce(sa.func.sum(column), 0)).where(where).scalar_subquery()

    row = session.execute(
        sa.select(
            total(
                wallets.c.balance_coins,
                wallets.c.wallet_id.in_(sa.select(PLAN.c.wallet_id).where(charged)),
            ),
            total(
                sa.func.coalesce(calls.c.coins_spent, 0),
                calls.c.call_id.in_(sa.select(PLAN.c.call_id).where(charged)),
            ),
            total(
                wallets.c.withdrawable_money,
                wallets.c.user_id.in_(
                    sa.select(PLAN.c.listener_id).where(PLAN.c.earnings_paise > 0)
                ),
            ),
        )
    ).one()
    return Holdings(int(row[0]), int(row[1]), Decimal(row[2]).quantize(Decimal("0.01")))


def check_conservation(
    *,
    planned_coins: int,
    planned_paise: int,
    before: Holdings,
    after: Holdings,
    spend_coins_written: int,
    earn_money_written: Decimal,
) -> None:
    """SPEC §4: coins taken from wallets = coins added to calls = -Σ spend rows
    (= the plan's charges); rupees credited = Σ earn rows (= the plan's earnings)."""
    coins = {
        "planned": planned_coins,
        "taken from wallets": before.balance_coins - after.balance_coins,
        "added to coins_spent": after.coins_spent - before.coins_spent,
        "spend rows": -spend_coins_written,
    }
    rupees = {
        "planned": paise_to_decimal(planned_paise),
        "credited to listeners": after.withdrawable_money - before.withdrawable_money,
        "earn rows": earn_money_written,
    }
    if len(set(coins.values())) > 1 or len(set(rupees.values())) > 1:
        raise ConservationError(
            "conservation violated, nothing was changed: coins "
            + ", ".join(f"{k} {v}" for k, v in coins.items())
            + "; rupees "
            + ", ".join(f"{k} {v}" for k, v in rupees.items())
        )


# --- the report ----------------------------------------------------------------


def _paise(rupees: Decimal) -> int:
    return int(rupees * 100)


def _report(
    session: Session,
    plan: sa.FromClause,
    end_rules: EndRules | None,
    replanned: int = 0,
) -> BillingReport:
    """The report of `plan` (the stored plan, or for a dry-run the plan's query): its
    counts in one aggregate query, then its ended and skipped calls, in call_id order."""
    p = plan.c
    billable = p.problem.is_(None)

    def count(where: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(sa.case((where, 1), else_=0)), 0)

    def total(column: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(column), 0)

    counts = session.execute(
        sa.select(
            count(sa.and_(billable, p.charge > 0)),
            total(p.charge),
            total(p.minutes),
            count(p.ends.is_(True)),
            total(p.earnings_paise),
            count(~billable),
            count(p.problem == HALF_ENDED),
        ).select_from(plan)
    ).one()
    rule_names = list(end_rules or {})
    ended: list[EndedCall] = []
    skipped: list[SkippedCall] = []
    details = session.execute(
        sa.select(plan).where(sa.or_(~billable, p.ends.is_(True))).order_by(p.call_id)
    )
    for row in details:
        if row.problem is not None:
            problem = PROBLEMS[row.problem]
            if row.problem == "unknown_call_type":
                problem += f" {row.call_type!r}"
            elif row.problem == "bad_badge_rate":
                problem += f" for {row.call_type} calls (listener {row.listener_id})"
            skipped.append(SkippedCall(row.call_id, problem))
            continue
        reasons = [name for bit, name in enumerate(rule_names) if row.expired & (1 << bit)]
        if row.unpaid:
            reasons.append(INSUFFICIENT_BALANCE)
        ended.append(
            EndedCall(
                call_id=row.call_id,
                caller_id=row.caller_id,
                listener_id=row.listener_id,
                call_type=row.call_type,
                coins_charged=row.charge,
                minutes_charged=row.minutes,
                coins_spent=row.coins_spent + row.charge,
                reasons=reasons,
                listener_earnings=paise_to_decimal(row.earnings_paise),
            )
        )
    return BillingReport(
        calls_charged=int(counts[0]),
        coins_charged=int(counts[1]),
        minutes_charged=int(counts[2]),
        calls_ended=int(counts[3]),
        listener_earnings=paise_to_decimal(int(counts[4])),
        skipped_calls=int(counts[5]),
        half_ended_calls=int(counts[6]),
        replanned_calls=replanned,
        ended=ended,
        skipped=skipped,
    )
