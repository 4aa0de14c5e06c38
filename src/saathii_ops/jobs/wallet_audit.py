"""`wallets audit` (SPEC §13): the operator's proof that no coin or rupee was lost,
true on the app's real data (docs/running-beside-the-app.md says what each finding
means and what to do about it).

Set-based queries, each one pass over its table:
- wallets whose balance_coins differs from Σ coins_change of all their rows
  (the app's purchases, its first-minute spends and its coin earnings, our
  spends, bonuses…), or whose withdrawable_money differs from Σ money_change of
  their rows that move withdrawable money: 'earn' and 'withdraw' (a purchase's
  money_change is the rupees the customer paid: not wallet money), with the
  difference;
- calls saathii-ops settled whose row changed afterwards (status, end_time,
  coins_spent or listener_money_earned differ from ops_settlements): ended again
  after settlement, the listener may have been paid twice; both versions;
- ongoing calls with an end_time (half-ended by the app), not settled by us
  (`half_ended.half_ended`);
- half-ended calls whose row changed since saathii-ops first saw them half-ended
  (ops_half_ended_calls): ended again by the app, the listener may have been paid
  twice; both versions;
- the other ongoing calls charged more than every started minute requires at
  `now` (overcharged), or less than billing should have caught up to by now
  (undercharged: still owing for a minute that started more than
  BILLING_GRACE ago — coin deduction runs every minute, so a fresh minute is
  not yet owed by the books);
- ongoing calls that billing cannot bill (a `Problem` each, the half-ended and
  settled-before calls above included), counted by billing's own `count_calls`;
- listener_badges rows held twice for one listener and day (the app's table without
  its key): each with the row every job reads (badges.one_row_each).
Billing's own rules: `coin_rate`, `coins_due`.

A finding `wallets reconcile --apply` resolved is not reported again: a call paid twice
it reversed or accepted, a half-ended call it completed (its later version is compared
with the status it set), the coins of an erased debit it could not collect (the wallet's
balance is held to its ledger plus those coins). `resolved` lists the corrections.
The real run (not a dry-run) records the half-ended calls it sees (`half_ended.record`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.billing.charge import count_calls
from saathii_ops.db.tables import ops_corrections as corrections
from saathii_ops.jobs import half_ended
from saathii_ops.jobs.audit_findings import (
    CallDrift,
    ChangedAfterSettlement,
    DuplicateBadge,
    EndedAgainAfterHalfEnd,
    HalfEndedCall,
    WalletDrift,
    changed_after_settlement,
    charge_drift,
    duplicate_badges,
    ended_again_after_half_end,
    half_ended_now,
    wallet_drift,
)
from saathii_ops.output.text import plural
from saathii_ops.reports import Report
from saathii_ops.runtime.context import RunContext
from saathii_ops.settings import Settings


@dataclass
class WalletAuditReport(Report):
    now: datetime
    wallets_off: int
    calls_changed_after_settlement: int
    calls_ended_again_after_half_end: int
    calls_half_ended: int
    calls_overcharged: int
    calls_undercharged: int
    calls_unbillable: int  # every call billing skips (half-ended included): dry-run names each
    duplicate_badge_days: int = 0  # listener-days with several listener_badges rows
    wallets: list[WalletDrift] = field(default_factory=list)
    changed_after_settlement: list[ChangedAfterSettlement] = field(default_factory=list)
    ended_again_after_half_end: list[EndedAgainAfterHalfEnd] = field(default_factory=list)
    half_ended: list[HalfEndedCall] = field(default_factory=list)
    calls: list[CallDrift] = field(default_factory=list)
    duplicate_badges: list[DuplicateBadge] = field(default_factory=list)

    @property
    def failed_rows(self) -> int:
        return (
            self.wallets_off
            + self.calls_changed_after_settlement
            + self.calls_ended_again_after_half_end
            + self.calls_half_ended
            + self.calls_overcharged
            + self.calls_undercharged
            + self.calls_unbillable
            + self.duplicate_badge_days
        )

    def found(self) -> str | None:
        found = [
            plural(count, noun) + what
            for count, noun, what in (
                (self.wallets_off, "wallet", " off the ledger"),
                (self.calls_changed_after_settlement, "call", " changed after settlement"),
                (
                    self.calls_ended_again_after_half_end,
                    "half-ended call",
                    " the app ended again",
                ),
                (self.calls_half_ended, "half-ended call", ""),
                (self.calls_overcharged, "ongoing call", " charged more than due"),
                (self.calls_undercharged, "ongoing call", " charged less than due"),
                (self.calls_unbillable, "ongoing call", " billing cannot bill"),
                (self.duplicate_badge_days, "listener-day", " with several badge rows"),
            )
            if count
        ]
        return f"found {', '.join(found)}" if found else None


def audit(session: Session, now: datetime, settings: Settings) -> WalletAuditReport:
    drifted_wallets = wallet_drift(session)
    changed = changed_after_settlement(session)
    ended_again = ended_again_after_half_end(session)
    half_ended_calls = half_ended_now(session)
    drifted_calls = charge_drift(session, now, settings)
    duplicates = duplicate_badges(session)
    return WalletAuditReport(
        now=now,
        wallets_off=len(drifted_wallets),
        calls_changed_after_settlement=len(changed),
        calls_ended_again_after_half_end=len(ended_again),
        calls_half_ended=len(half_ended_calls),
        calls_overcharged=sum(1 for c in drifted_calls if c.drift == "overcharged"),
        calls_undercharged=sum(1 for c in drifted_calls if c.drift == "undercharged"),
        calls_unbillable=count_calls(session, now, settings).unbillable,
        wallets=drifted_wallets,
        changed_after_settlement=changed,
        ended_again_after_half_end=ended_again,
        half_ended=half_ended_calls,
        calls=drifted_calls,
        duplicate_badge_days=len(duplicates),
        duplicate_badges=duplicates,
    )


def audit_job(run: RunContext[None]) -> Report:
    """The registered job `wallets-audit`; the runner records it. A real run also records
    the half-ended calls it sees, so that the app ending one again stays visible."""
    report = audit(run.session, run.now, run.settings)
    if run.apply:
        half_ended.record(run.session, run.run_id)
    return report


@dataclass
class ResolvedFinding:
    """A finding `wallets reconcile --apply` resolved, and its correction."""

    correction_id: int
    corrected_at: datetime
    corrected_by: str
    reason: str
    finding: str
    action: str
    wallet_id: int | None
    call_id: int | None
    coins_change: int
    uncollectable_coins: int
    transaction_id: int | None
    before: dict[str, Any]
    after: dict[str, Any]


@dataclass
class ResolvedReport(Report):
    resolved: int
    corrections: list[ResolvedFinding] = field(default_factory=list)


def resolved(session: Session) -> ResolvedReport:
    """`wallets audit --resolved`: every correction, newest first."""
    c = corrections.c
    rows = session.execute(
        sa.select(
            c.correction_id,
            c.corrected_at,
            c.corrected_by,
            c.reason,
            c.finding,
            c.action,
            c.wallet_id,
            c.call_id,
            c.coins_change,
            c.uncollectable_coins,
            c.transaction_id,
            c.before,
            c.after,
        ).order_by(c.correction_id.desc())
    ).all()
    found = [ResolvedFinding(**row._asdict()) for row in rows]
    return ResolvedReport(resolved=len(found), corrections=found)
