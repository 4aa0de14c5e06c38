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

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.billing.conservation import ConservationError
from saathii_ops.calls import CallStatus
from saathii_ops.db.engine import database_now, is_sqlite
from saathii_ops.db.models import Correction, UserCall, UserTransaction, UserWallet, table
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
from saathii_ops.output.text import plural
from saathii_ops.reports import Report
from saathii_ops.settings import Settings

wallets = table(UserWallet)
ledger = table(UserTransaction)
calls = table(UserCall)
corrections = table(Correction)

REVERSE = "reverse"
ACCEPT = "accept"

# actions that change something and are recorded; the others only name a finding
COLLECTED, REVERSED, ACCEPTED = "collected", "reversed", "accepted"
APPLIED_ACTIONS = (COLLECTED, REVERSED, ACCEPTED, COMPLETED)
CHOOSE = "choose"  # a call paid twice without --reverse or --accept
CHECK = "check"  # no automatic guess: the operator checks

COINS_BELOW_LEDGER = "coins_below_ledger"
RUPEES_OFF_LEDGER = "rupees_off_ledger"

CHECK_COINS = (
    "the wallet holds fewer coins than its ledger: a debit written without its ledger row, "
    "or a credit the ledger has and the balance lost (a write outside the ledger, a manual "
    "fix). Compare the wallet's updated_at with its latest user_transactions rows and the "
    "app's logs; then add the missing row or correct the balance, never both"
)
CHECK_RUPEES = (
    "withdrawable_money differs from its 'earn' and 'withdraw' rows: a payout or an earning "
    "written without its row (or a row without its change). Check the listener's payouts "
    "and the app's logs; then add the missing row or correct the money, never both"
)


@dataclass
class PlannedCorrection:
    """One finding and what reconcile does about it (or, with `applied`, did)."""

    finding: str
    action: str  # collected | reversed | accepted | completed (applied); choose | check
    wallet_id: int | None
    call_id: int | None
    coins_change: int  # to the wallet's balance_coins (<= 0)
    uncollectable_coins: int
    detail: str
    before: dict[str, Any]
    after: dict[str, Any] | None = None
    correction_id: int | None = None  # ops_corrections, once applied
    transaction_id: int | None = None  # the ledger row written, once applied


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


@dataclass(frozen=True)
class Scope:
    """What the operator narrowed reconcile to, and their choice for calls paid twice."""

    wallet_id: int | None = None
    call_id: int | None = None
    paid_twice: str | None = None  # REVERSE | ACCEPT | None


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
    items = _plan(session, scope)
    if apply:
        assert reason and corrected_by, "an applied correction names who and why"
        if not is_sqlite(session):
            # under the locks, what is applied: the locked rows' findings as they are now
            items = _merge(_plan(session, scope, locked=_lock(session, items)), items)
        _apply(session, now, items, reason, corrected_by)
    return _report(now, apply, reason, items)


# --- the plan ------------------------------------------------------------------------


@dataclass
class _Parties:
    caller_wallet_id: int | None
    listener_wallet_id: int | None


def _plan(
    session: Session, scope: Scope, *, locked: tuple[list[int], list[int]] | None = None
) -> list[PlannedCorrection]:
    """Every finding in scope (of the `locked` wallets and calls, when given), with what
    to do; wallet findings first, then calls, each in id order (`_in_order`). Balances are followed
    through the plan: two corrections of one wallet never take more than it holds."""
    call_ids = [scope.call_id] if scope.call_id is not None else None
    wallet_ids = [scope.wallet_id] if scope.wallet_id is not None else None
    if locked is not None:  # within the scope still (a call's listener is locked too)
        wallet_ids = [w for w in locked[0] if scope.wallet_id in (None, w)]
        call_ids = [c for c in locked[1] if scope.call_id in (None, c)]
    items: list[PlannedCorrection] = []
    balances: dict[int, int] = {}
    if scope.call_id is None:
        for drift in wallet_drift(session, wallet_ids):
            before = _plain(drift)
            balances[drift.wallet_id] = drift.balance_coins
            if drift.coins_difference > 0:
                items.append(
                    _take(
                        ERASED_DEBIT,
                        COLLECTED,
                        drift.wallet_id,
                        None,
                        drift.coins_difference,
                        balances,
                        before,
                        "the wallet holds more coins than its ledger (a debit erased by a "
                        "write of the app): its balance is brought to the ledger",
                    )
                )
            elif drift.coins_difference < 0:
                items.append(
                    PlannedCorrection(
                        COINS_BELOW_LEDGER, CHECK, drift.wallet_id, None, 0, 0, CHECK_COINS, before
                    )
                )
            if drift.money_difference != 0:
                items.append(
                    PlannedCorrection(
                        RUPEES_OFF_LEDGER, CHECK, drift.wallet_id, None, 0, 0, CHECK_RUPEES, before
                    )
                )

    paid_twice: list[tuple[str, int, int | None, dict[str, Any]]] = [
        (PAID_TWICE_AFTER_SETTLEMENT, c.call_id, c.listener_money_earned_now, _plain(c))
        for c in changed_after_settlement(session, call_ids)
    ] + [
        (PAID_TWICE_AFTER_HALF_END, c.call_id, c.listener_money_earned_now, _plain(c))
        for c in ended_again_after_half_end(session, call_ids)
    ]
    still_half_ended = half_ended_now(session, call_ids)
    parties = _parties(
        session, [c for _, c, _, _ in paid_twice] + [c.call_id for c in still_half_ended]
    )
    for listener_wallet, balance in _balances(session, parties).items():
        balances.setdefault(listener_wallet, balance)

    def in_scope(call_id: int) -> bool:
        if scope.wallet_id is None:
            return True
        party = parties[call_id]
        return scope.wallet_id in (party.caller_wallet_id, party.listener_wallet_id)

    for finding, call_id, paid, before in sorted(paid_twice, key=lambda f: (f[1], f[0])):
        if not in_scope(call_id):
            continue
        wallet_id = parties[call_id].listener_wallet_id
        if scope.paid_twice == REVERSE:
            items.append(
                _take(
                    finding,
                    REVERSED,
                    wallet_id,
                    call_id,
                    paid or 0,
                    balances,
                    before,
                    f"the app paid the listener {paid or 0} coins again: a negative 'earn' row "
                    "takes them back",
                )
            )
        elif scope.paid_twice == ACCEPT:
            items.append(
                PlannedCorrection(
                    finding,
                    ACCEPTED,
                    wallet_id,
                    call_id,
                    0,
                    0,
                    f"the second payment ({paid or 0} coins) stands",
                    before,
                )
            )
        else:
            items.append(
                PlannedCorrection(
                    finding,
                    CHOOSE,
                    wallet_id,
                    call_id,
                    0,
                    0,
                    f"the app paid the listener {paid or 0} coins again: --reverse takes them "
                    "back, --accept lets them stand",
                    before,
                )
            )
    for call in still_half_ended:
        if in_scope(call.call_id):
            items.append(
                PlannedCorrection(
                    HALF_ENDED,
                    COMPLETED,
                    None,
                    call.call_id,
                    0,
                    0,
                    "status 'completed': the app's end (its end_time and payment) stands",
                    _plain(call),
                )
            )
    return _in_order(items)


def _merge(
    under_locks: list[PlannedCorrection], first: list[PlannedCorrection]
) -> list[PlannedCorrection]:
    """The plan made under the locks, and the findings of the first plan it did not
    cover (those only named: nothing of theirs was locked), in the plan's order."""

    def key(item: PlannedCorrection) -> tuple[str, int | None, int | None]:
        return item.finding, item.wallet_id, item.call_id

    covered = {key(item) for item in under_locks}
    return _in_order(
        under_locks
        + [i for i in first if i.action not in APPLIED_ACTIONS and key(i) not in covered]
    )


# the order of a plan: wallets, then calls (a call's payment before its completion)
FINDING_ORDER = (
    ERASED_DEBIT,
    COINS_BELOW_LEDGER,
    RUPEES_OFF_LEDGER,
    PAID_TWICE_AFTER_SETTLEMENT,
    PAID_TWICE_AFTER_HALF_END,
    HALF_ENDED,
)


def _in_order(items: list[PlannedCorrection]) -> list[PlannedCorrection]:
    return sorted(
        items,
        key=lambda i: (
            i.call_id is not None,
            i.call_id if i.call_id is not None else i.wallet_id or 0,
            FINDING_ORDER.index(i.finding),
        ),
    )


def _take(
    finding: str,
    action: str,
    wallet_id: int | None,
    call_id: int | None,
    coins: int,
    balances: dict[int, int],
    before: dict[str, Any],
    detail: str,
) -> PlannedCorrection:
    """Take `coins` from the wallet's balance as far as it goes (never below zero)."""
    balance = balances.get(wallet_id, 0) if wallet_id is not None else 0
    taken = min(coins, max(balance, 0))
    if wallet_id is not None:
        balances[wallet_id] = balance - taken
    if taken < coins:
        detail += f"; {coins - taken} coins cannot be collected (the balance holds {balance})"
    return PlannedCorrection(
        finding, action, wallet_id, call_id, -taken, coins - taken, detail, before
    )


def _parties(session: Session, call_ids: list[int]) -> dict[int, _Parties]:
    if not call_ids:
        return {}
    caller, listener = wallets.alias("caller_wallet"), wallets.alias("listener_wallet")
    rows = session.execute(
        sa.select(calls.c.call_id, caller.c.wallet_id, listener.c.wallet_id)
        .select_from(
            calls.outerjoin(caller, caller.c.user_id == calls.c.user_id).outerjoin(
                listener, listener.c.user_id == calls.c.listener_id
            )
        )
        .where(calls.c.call_id.in_(call_ids))
    ).all()
    return {
        call_id: _Parties(caller_wallet, listener_wallet)
        for call_id, caller_wallet, listener_wallet in rows
    }


def _balances(session: Session, parties: dict[int, _Parties]) -> dict[int, int]:
    ids = {p.listener_wallet_id for p in parties.values()} - {None}
    if not ids:
        return {}
    rows = session.execute(
        sa.select(wallets.c.wallet_id, sa.func.coalesce(wallets.c.balance_coins, 0)).where(
            wallets.c.wallet_id.in_(ids)
        )
    ).all()
    return {wallet_id: int(balance) for wallet_id, balance in rows}


def _lock(session: Session, items: list[PlannedCorrection]) -> tuple[list[int], list[int]]:
    """PostgreSQL: lock the wallets, then the calls, the plan changes (ids in order, as
    billing does: the two queue instead of deadlocking); the app waits for them. Returns
    the ids locked (wallets, calls)."""
    acting = [item for item in items if item.action in APPLIED_ACTIONS]
    wallet_ids = sorted({item.wallet_id for item in acting if item.wallet_id is not None})
    call_ids = sorted({item.call_id for item in acting if item.call_id is not None})
    _lock_rows(session, wallets.c.wallet_id, wallet_ids)
    _lock_rows(session, calls.c.call_id, call_ids)
    return wallet_ids, call_ids


def _lock_rows(session: Session, key: sa.Column[int], ids: list[int]) -> None:
    """Lock the rows of `key`'s table whose key is in `ids`, in key order, waiting for
    them (FOR UPDATE, no SKIP LOCKED: the plan was made for these rows)."""
    if ids:
        session.execute(sa.select(key).where(key.in_(ids)).order_by(key).with_for_update()).all()


# --- applying it ---------------------------------------------------------------------


def _apply(
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
            assert item.wallet_id is not None
            balance = _balance(session, item.wallet_id)
            changed = session.connection().execute(
                sa.update(wallets)
                .where(wallets.c.wallet_id == item.wallet_id, wallets.c.balance_coins == balance)
                .values(balance_coins=wallets.c.balance_coins + item.coins_change, updated_at=now)
            )
            expect_one(f"wallet {item.wallet_id} corrected", changed.rowcount)
            item.after = {"balance_coins": balance + item.coins_change}
        if item.action == REVERSED and item.coins_change:
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
            rows_written += item.coins_change
        if item.action == COMPLETED:
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
    _check_conservation(session, acting, before, _total_balance(session, wallet_ids), rows_written)


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


# --- the report ----------------------------------------------------------------------


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


def _plain(record: Any) -> dict[str, Any]:
    """An audit record as JSON values (ops_corrections.before)."""

    def value(v: Any) -> Any:
        if isinstance(v, Decimal):
            return str(v)
        if isinstance(v, datetime | date):
            return v.isoformat()
        return v

    return {k: value(v) for k, v in dataclasses.asdict(record).items()}
