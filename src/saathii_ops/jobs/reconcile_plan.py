"""`wallets reconcile`'s plan (jobs/reconcile.py): each finding of the audit's queries in
scope, and what to do about it; and the locks a real run plans again under.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.db.tables import user_calls as calls
from saathii_ops.db.tables import user_wallets as wallets
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


@dataclass(frozen=True)
class Scope:
    """What the operator narrowed reconcile to, and their choice for calls paid twice."""

    wallet_id: int | None = None
    call_id: int | None = None
    paid_twice: str | None = None  # REVERSE | ACCEPT | None


@dataclass
class _Parties:
    caller_wallet_id: int | None
    listener_wallet_id: int | None


def plan(
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
    balances: dict[int, int] = {}
    items: list[PlannedCorrection] = []
    if scope.call_id is None:
        items += _wallet_corrections(session, wallet_ids, balances)
    items += _call_corrections(session, scope, call_ids, balances)
    return _in_order(items)


def _wallet_corrections(
    session: Session, wallet_ids: list[int] | None, balances: dict[int, int]
) -> list[PlannedCorrection]:
    """The wallets off their ledger: an erased debit collected, the rest named to check.
    Records each wallet's balance in `balances`."""
    items: list[PlannedCorrection] = []
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
    return items


def _call_corrections(
    session: Session, scope: Scope, call_ids: list[int] | None, balances: dict[int, int]
) -> list[PlannedCorrection]:
    """The calls paid twice (as the operator chose) and the calls still half-ended
    (completed), of the scope's wallet when it names one."""
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

    items = [
        _paid_twice_correction(
            finding, call_id, paid, before, parties[call_id].listener_wallet_id, scope, balances
        )
        for finding, call_id, paid, before in sorted(paid_twice, key=lambda f: (f[1], f[0]))
        if in_scope(call_id)
    ]
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
    return items


def _paid_twice_correction(
    finding: str,
    call_id: int,
    paid: int | None,
    before: dict[str, Any],
    wallet_id: int | None,
    scope: Scope,
    balances: dict[int, int],
) -> PlannedCorrection:
    """A call paid twice: reversed or accepted as the operator chose, else only named."""
    if scope.paid_twice == REVERSE:
        return _take(
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
    if scope.paid_twice == ACCEPT:
        return PlannedCorrection(
            finding,
            ACCEPTED,
            wallet_id,
            call_id,
            0,
            0,
            f"the second payment ({paid or 0} coins) stands",
            before,
        )
    return PlannedCorrection(
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


def merge(
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


def lock(session: Session, items: list[PlannedCorrection]) -> tuple[list[int], list[int]]:
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


def _plain(record: Any) -> dict[str, Any]:
    """An audit record as JSON values (ops_corrections.before)."""

    def value(v: Any) -> Any:
        if isinstance(v, Decimal):
            return str(v)
        if isinstance(v, datetime | date):
            return v.isoformat()
        return v

    return {k: value(v) for k, v in dataclasses.asdict(record).items()}
