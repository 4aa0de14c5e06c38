"""PostgreSQL, a real run: locking what the stored plan changes, and planning again the
callers whose rows changed since the plan was made.

The plan is made without locks, so that row locks are held only while the plan is
applied (the app waits for them). Then the rows the plan changes are locked, each kind
in one order: the wallets (callers', and listeners' of the calls that end) in wallet_id
order, the calls, the user_status rows of the parties of the calls that end in user_id
order; all FOR UPDATE SKIP LOCKED, so a run never waits for a row another session holds
(the app's statement, a DBA's open transaction) and, waiting for nothing, cannot
deadlock. A call whose caller's wallet, or (when it ends) listener's wallet or parties'
user_status, another session holds is left out with all the calls of its caller (they
share the balance); a call whose own row another session holds (the app ending it) is
left out and its caller's other calls are planned again without it. Each is named in the
report as held; the next run bills it, catching up every minute it missed. A caller
whose calls or balance changed between planning and locking (another run, the app) is
planned again, now under the locks. Every statement is still guarded (status, the
coins_spent the plan saw, balance >= charge), and a statement that does not change
exactly the planned rows rolls the whole run back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.billing.plan import EndRules, StoredPlan, plan_query
from saathii_ops.billing.report import HeldCall
from saathii_ops.db.calls import CallStatus
from saathii_ops.db.tables import user_calls as calls
from saathii_ops.db.tables import user_status as status
from saathii_ops.db.tables import user_wallets as wallets
from saathii_ops.settings import Settings

# The wallets ('wallet') and user_status rows ('status') the run holds, by user_id, so
# that the rows it could not lock are found by a join.
LOCKED = sa.Table(
    "saathii_billing_locked",
    sa.MetaData(),
    sa.Column("kind", sa.String(6), primary_key=True),
    sa.Column("user_id", sa.Integer, primary_key=True, autoincrement=False),
    prefixes=["TEMPORARY"],
)


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
    table_: sa.Table, kind: str, user: sa.ColumnElement[int]
) -> sa.ColumnElement[bool]:
    """`user` has a row in `table_` that the run could not lock: another session holds it."""
    return sa.and_(
        sa.exists().where(table_.c.user_id == user),
        ~sa.exists().where(LOCKED.c.kind == kind, LOCKED.c.user_id == user),
    )


def lock_and_replan(
    session: Session,
    now: datetime,
    settings: Settings,
    end_rules: EndRules | None,
    plan: StoredPlan,
) -> tuple[int, list[HeldCall]]:
    """Once the plan is stored: lock what it changes; plan again, under the locks, the
    callers whose rows changed since it was made; leave out (and name) the calls that
    need a row another session holds. Returns how many planned calls were planned again,
    and the calls held.

    Every lock is taken FOR UPDATE SKIP LOCKED (the module's docstring): wallets first, in
    wallet_id order (the callers' of the calls charged or ending, the listeners' of the
    calls ending, whom settlement credits), then the calls, then the user_status rows of
    the parties of the calls that end, in user_id order (settlement clears their flags).
    """
    acting, ending = plan.acting(), plan.ends.is_(True)
    LOCKED.create(session.connection())

    def lock_wallets() -> None:
        # a listener's wallet changes only when one of their calls ends (settlement pays it)
        parties = sa.union(
            sa.select(plan.caller_id).where(acting), sa.select(plan.listener_id).where(ending)
        )
        _lock_rows(session, "wallet", wallets, wallets.c.wallet_id, parties)

    lock_wallets()
    held_call_ids = _lock_calls(session, plan)

    replanned = _replan_changed(session, now, settings, end_rules, plan)
    if replanned:
        lock_wallets()  # a call planned again may now charge or end: its parties' wallets
    status_parties = sa.union(
        sa.select(plan.caller_id).where(ending), sa.select(plan.listener_id).where(ending)
    )
    _lock_rows(session, "status", status, status.c.user_id, status_parties)
    held = _leave_out_held(session, plan, held_call_ids)
    LOCKED.drop(session.connection())
    return replanned, held


def _lock_calls(session: Session, plan: StoredPlan) -> set[int]:
    """Lock the calls the plan charges or ends; mark `held_elsewhere` (and return) those
    another session holds: planned again by `_replan_changed`, whose (locking) scope skips
    them. Only the few held are written to the plan, not every call locked."""
    locked = (
        sa.select(calls.c.call_id)
        .where(calls.c.call_id.in_(sa.select(plan.call_id).where(plan.acting()).correlate(None)))
        .with_for_update(of=calls, skip_locked=True)
        .cte("locked_calls")
        .prefix_with("MATERIALIZED")  # locked once, whatever the join
    )
    held = set(
        session.scalars(
            sa.select(plan.call_id)
            .select_from(plan.table.outerjoin(locked, locked.c.call_id == plan.call_id))
            .where(plan.acting(), locked.c.call_id.is_(None))
        )
    )
    if held:
        session.execute(
            sa.update(plan.table).where(plan.call_id.in_(sorted(held))).values(held_elsewhere=True)
        )
    return held


def _leave_out_held(session: Session, plan: StoredPlan, held_call_ids: set[int]) -> list[HeldCall]:
    """Leave out of the plan the calls that need a row the run could not lock: with all
    its caller's calls when it is the caller's wallet, a listener's wallet or a party's
    user_status. `held_call_ids`: the calls whose own row another session held (planned
    again without them). Returns the calls left out, in call_id order."""
    acting = plan.acting()
    ending = plan.ends.is_(True)
    needs_held_row = sa.case(
        (_held_elsewhere(wallets, "wallet", plan.caller_id), "the caller's wallet"),
        (
            sa.and_(ending, _held_elsewhere(wallets, "wallet", plan.listener_id)),
            "the listener's wallet",
        ),
        (
            sa.and_(ending, _held_elsewhere(status, "status", plan.caller_id)),
            "the caller's user_status",
        ),
        (
            sa.and_(ending, _held_elsewhere(status, "status", plan.listener_id)),
            "the listener's user_status",
        ),
    )
    blocked = sa.select(plan.party, needs_held_row.label("held")).where(acting).subquery()
    held_parties = dict(
        session.execute(
            sa.select(blocked.c.party, sa.func.min(blocked.c.held))
            .where(blocked.c.held.is_not(None))
            .group_by(blocked.c.party)
        ).all()
    )
    # a held call is planned again without it; once its holder let it go, it is back
    held_call_ids -= set(
        session.scalars(sa.select(plan.call_id).where(plan.call_id.in_(held_call_ids)))
    )
    held = dict.fromkeys(held_call_ids, "the call")
    if held_parties:
        # the caller's calls share its balance: all are left for the next run
        removed = session.execute(
            sa.delete(plan.table)
            .where(plan.party.in_(list(held_parties)))
            .returning(plan.call_id, plan.party, acting)
        ).all()
        held.update(
            (call_id, held_parties[party]) for call_id, party, was_acting in removed if was_acting
        )
    return [HeldCall(c, why) for c, why in sorted(held.items())]


def _replan_changed(
    session: Session,
    now: datetime,
    settings: Settings,
    end_rules: EndRules | None,
    plan: StoredPlan,
) -> int:
    """Plan again, under the run's locks, the callers whose calls or balance changed since
    the plan was made, or one of whose calls another session holds (their plan skips
    it). Returns how many planned calls were planned again."""
    balance = sa.func.coalesce(wallets.c.balance_coins, 0)
    changed = (
        sa.select(plan.party)
        .select_from(
            plan.table.outerjoin(calls, calls.c.call_id == plan.call_id).outerjoin(
                wallets, wallets.c.wallet_id == plan.wallet_id
            )
        )
        .where(
            plan.acting(),
            sa.or_(
                plan.held_elsewhere.is_(True),  # left out: its caller's calls planned again
                calls.c.status != CallStatus.ONGOING,
                calls.c.end_time.is_not(None),
                sa.func.coalesce(calls.c.coins_spent, 0) != plan.coins_spent,
                sa.case((balance > 0, balance), else_=0) != plan.balance,
            ),
        )
        .distinct()
    )
    stale = session.scalars(changed).all()
    if not stale:
        return 0
    replanned = session.execute(
        sa.delete(plan.table).where(plan.party.in_(stale)).returning(plan.call_id)
    ).all()
    # their wallets the run could lock stay as the plan sees them until commit (a caller
    # whose wallet another session holds is left out afterwards)
    # planned under the locks: a call another session still holds is not in it
    plan.insert(
        plan_query(
            now, settings, end_rules, lock=True, parties=sa.select(sa.func.unnest(list(stale)))
        )
    )
    return len(replanned)
