"""`wallets reconcile` (SPEC §13): corrections for what `wallets audit` finds.

History is never edited or deleted: a correction changes a wallet's balance or a call's
status, adds ledger rows, and is recorded in ops_corrections (who, when, why, the finding,
before and after). What each finding gets (docs/running-beside-the-app.md):

- an erased debit (a wallet holding more coins than its ledger + what was written off):
  the balance is brought down to its ledger. The ledger already holds the debit (our
  'spend' row); only the balance lost it, so no ledger row is added (a row would move
  the ledger too and leave the difference in place). Never below zero: what the balance
  cannot give is recorded as uncollectable, and the audit holds the wallet to its ledger
  plus those coins from then on;
- a call paid twice (ended again after our settlement, or after the app half-ended it):
  the operator chooses. `reverse`: a negative 'earn' row of the coins the app paid
  (its listener_money_earned now; the app pays listeners in coins) and the same change to
  the listener's balance (never below zero: the rest is recorded as uncollectable);
  `accept`: nothing changes but the record. Without a choice it is only named;
- a half-ended call still half-ended: completed (status 'completed'; the app's end, its
  end_time and payment, stands);
- a wallet holding fewer coins or rupees than its ledger, or more rupees: no automatic
  guess; named with what to check.

The plan is the audit's own queries; a real run plans once, locks the wallets and calls
it changes (PostgreSQL: wallets in wallet_id order, then calls, as billing does), plans
again under the locks, applies each correction with a guarded statement, and checks
conservation before the runner commits (`runner.run_exclusive` holds billing's job locks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from saathii_ops.db.engine import is_sqlite
from saathii_ops.jobs.reconcile_apply import apply_corrections
from saathii_ops.jobs.reconcile_plan import (
    APPLIED_ACTIONS,
    CHECK,
    CHOOSE,
    COLLECTED,
    REVERSED,
    PlannedCorrection,
    Scope,
    lock,
    merge,
    plan,
)
from saathii_ops.output.text import plural
from saathii_ops.reports import Report
from saathii_ops.settings import Settings


@dataclass
class ReconcileReport(Report):
    now: datetime
    applied: bool
    reason: str | None
    corrections: int  # made (or, in a preview, that --apply would make)
    coins_collected: int  # erased debits taken back from balances
    coins_reversed: int  # second payments taken back from listeners
    coins_uncollectable: int  # what the balances could not give
    awaiting_decision: int  # calls paid twice: --reverse or --accept
    named_only: int  # findings with no automatic correction: check them
    items: list[PlannedCorrection] = field(default_factory=list)

    def headline(self) -> str:
        verb = "made" if self.applied else "to make"
        return (
            f"{plural(self.corrections, 'correction')} {verb} "
            f"(collected {self.coins_collected} coins, "
            f"reversed {self.coins_reversed}, uncollectable {self.coins_uncollectable}); "
            f"{self.awaiting_decision} awaiting --reverse or --accept; "
            f"{self.named_only} to check by hand"
        )


def reconcile(
    session: Session,
    now: datetime,
    settings: Settings,
    *,
    apply: bool,
    scope: Scope,
    reason: str | None = None,
    corrected_by: str | None = None,
) -> ReconcileReport:
    """Plan the corrections at `now`; with `apply` (and a reason), make and record them."""
    items = plan(session, scope)
    if apply:
        assert reason and corrected_by, "an applied correction names who and why"
        if not is_sqlite(session):
            # under the locks, what is applied: the locked rows' findings as they are now
            items = merge(plan(session, scope, locked=lock(session, items)), items)
        apply_corrections(session, now, items, reason, corrected_by)
    return _report(now, apply, reason, items)


def _report(
    now: datetime, applied: bool, reason: str | None, items: list[PlannedCorrection]
) -> ReconcileReport:
    acting = [item for item in items if item.action in APPLIED_ACTIONS]
    return ReconcileReport(
        now=now,
        applied=applied,
        reason=reason,
        corrections=len(acting),
        coins_collected=-sum(i.coins_change for i in acting if i.action == COLLECTED),
        coins_reversed=-sum(i.coins_change for i in acting if i.action == REVERSED),
        coins_uncollectable=sum(i.uncollectable_coins for i in acting),
        awaiting_decision=sum(1 for item in items if item.action == CHOOSE),
        named_only=sum(1 for item in items if item.action == CHECK),
        items=items,
    )
