"""The report of a billing run: counts of the whole run, its ended, skipped and held calls
in full, read from the plan (the stored plan, or for a dry-run the plan's query)."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.billing.money import paise_to_rupees
from saathii_ops.billing.plan import CHUNK_SIZE, EndRules
from saathii_ops.billing.problems import Problem
from saathii_ops.output.text import plural
from saathii_ops.reports import INTERNAL, Report, SpooledRecords

INSUFFICIENT_BALANCE = "insufficient_balance"
HELD = "held by another session; next run"


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
    problem: str  # what operators see: Problem.of_call


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


def report(
    session: Session,
    plan: sa.FromClause,
    end_rules: EndRules | None,
    replanned: int = 0,
) -> BillingReport:
    """The report of `plan` (the stored plan's table, or for a dry-run the plan's query):
    its counts in one aggregate query, then its ended and skipped calls, in call_id order."""
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
            count(p.problem == Problem.HALF_ENDED.value),
        ).select_from(plan)
    ).one()
    ended, skipped = _ended_and_skipped(session, plan, end_rules)
    return BillingReport(
        calls_charged=int(counts[0]),
        coins_charged=int(counts[1]),
        minutes_charged=int(counts[2]),
        calls_ended=int(counts[3]),
        listener_earnings=paise_to_rupees(int(counts[4])),
        skipped_calls=int(counts[5]),
        half_ended_calls=int(counts[6]),
        replanned_calls=replanned,
        ended=ended,
        skipped=skipped,
    )


def _ended_and_skipped(
    session: Session, plan: sa.FromClause, end_rules: EndRules | None
) -> tuple[list[EndedCall], list[SkippedCall]]:
    p = plan.c
    rule_names = list(end_rules or {})
    ended: list[EndedCall] = []
    skipped: list[SkippedCall] = []
    details = session.execute(
        sa.select(plan).where(sa.or_(~p.problem.is_(None), p.ends.is_(True))).order_by(p.call_id)
    )
    for row in details:
        if row.problem is not None:
            problem = Problem(row.problem).of_call(row.call_type, row.listener_id)
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
                listener_earnings=paise_to_rupees(row.earnings_paise),
            )
        )
    return ended, skipped


def spool_charged(session: Session, planned: sa.Subquery) -> SpooledRecords:
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
