"""Half-ended calls (docs/running-beside-the-app.md): an ongoing call with an end_time,
what the app's end-call writes for the reason 'ongoing'. It has paid the listener, but
the call stays 'ongoing', and the app may end it again and pay a second time.

The one home of the rule and of what saathii-ops records of such a call: the first
version it saw, one row per call in ops_half_ended_calls, written by the real runs of
billing and call cleanup (the calls they skip), of the audit and of `wallets reconcile`.
A dry-run records nothing. The audit compares the call's later versions with it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.db.calls import CallStatus
from saathii_ops.db.engine import database_now, is_sqlite
from saathii_ops.db.tables import UTCDateTime
from saathii_ops.db.tables import ops_half_ended_calls as observed
from saathii_ops.db.tables import ops_settlements as settlements
from saathii_ops.db.tables import user_calls as calls


def half_ended(call: sa.FromClause) -> sa.ColumnElement[bool]:
    """The call is half-ended and was not settled by us (a call we settled that the app
    changed since is the audit's 'changed after settlement', compared with our record)."""
    return sa.and_(
        call.c.status == CallStatus.ONGOING,
        call.c.end_time.is_not(None),
        ~sa.exists().where(settlements.c.call_id == call.c.call_id),
    )


def record(session: Session, run_id: str | None, call_ids: sa.Select[Any] | None = None) -> int:
    """Record the half-ended calls (of `call_ids`, when given) not recorded yet, as they are
    now, by the job run `run_id` (None: not a job run); returns how many were recorded. A
    call recorded before keeps its first version; two runs recording one call at once both
    succeed (ON CONFLICT DO NOTHING)."""
    where = [half_ended(calls)]
    if call_ids is not None:
        where.append(calls.c.call_id.in_(call_ids))
    source = sa.select(
        calls.c.call_id,
        sa.literal(database_now(session), UTCDateTime()),
        sa.literal(run_id, sa.String(32)),
        calls.c.end_time,
        sa.func.coalesce(calls.c.coins_spent, 0),
        calls.c.listener_money_earned,
    ).where(*where, ~sa.exists().where(observed.c.call_id == calls.c.call_id))
    # in call_id order: two runs inserting the same calls at once wait for each other in
    # one order (a speculative insertion waits for the other's row), never deadlock
    source = source.order_by(calls.c.call_id)
    insert: Any
    if is_sqlite(session):
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    statement = (
        insert(observed)
        .from_select(
            [
                "call_id",
                "seen_at",
                "run_uuid",
                "end_time",
                "coins_spent",
                "listener_money_earned",
            ],
            source,
        )
        .on_conflict_do_nothing(index_elements=["call_id"])
    )
    return int(session.connection().execute(statement).rowcount or 0)
