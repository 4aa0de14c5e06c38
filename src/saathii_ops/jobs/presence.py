"""Presence cleanup (SPEC §7).

Each rule is one predicate used twice: selected for the plan (dry-run) and as
the guard of the UPDATE … RETURNING that applies it, so a preview and the
change cannot drift apart. The app may write presence at the same moment; a
guarded UPDATE re-checks its predicate on the row it changes.

A real run on PostgreSQL locks the rows it changes FOR UPDATE SKIP LOCKED, each rule
in one statement: a row another session holds (the app's statement, a DBA's open
transaction) is not waited for; it is named in `held_ids` ("held by another session;
next run") and changed by the next run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.db.calls import CallStatus
from saathii_ops.db.engine import is_sqlite
from saathii_ops.db.tables import user_calls as calls
from saathii_ops.db.tables import user_status as status
from saathii_ops.reports import Report
from saathii_ops.runtime.context import RunContext
from saathii_ops.settings import Settings


@dataclass
class PresenceReport(Report):
    inactive_before: datetime
    marked_offline: int
    cleared_wait_time: int
    cleared_no_call: int
    online_after: int
    offline_ids: list[int] = field(default_factory=list)
    wait_time_ids: list[int] = field(default_factory=list)
    no_call_ids: list[int] = field(default_factory=list)
    # rows another session held: left for the next run (not a failure)
    held_by_another_session: int = 0
    held_ids: list[int] = field(default_factory=list)


def inactive_cutoff(now: datetime, settings: Settings) -> datetime:
    """The presence limit: online users not seen since this instant are inactive."""
    return now - timedelta(minutes=settings.presence_inactive_minutes)


# `= true`, not `IS TRUE`: PostgreSQL uses the partial indexes on is_online and is_busy
# only for a condition that implies their predicate, which `IS TRUE` does not (to its
# planner); in a WHERE both exclude NULL alike.
def online() -> sa.ColumnElement[bool]:
    return status.c.is_online == sa.true()


def busy() -> sa.ColumnElement[bool]:
    return status.c.is_busy == sa.true()


def offline_but_seen(cutoff: datetime) -> sa.ColumnElement[bool]:
    """Marked offline, yet seen within the inactive limit: once this job marks a user
    offline, the app's heartbeat updates only last_seen and never sets is_online again
    (docs/running-beside-the-app.md). Data for `status`, not a problem by itself."""
    return sa.and_(status.c.is_online == sa.false(), status.c.last_seen >= cutoff)


def inactive_online(cutoff: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(online(), status.c.last_seen < cutoff)


def off_any_call() -> sa.ColumnElement[bool]:
    """The user is neither the caller nor the listener of an ongoing call.

    Two NOT EXISTS joined by AND, each of which PostgreSQL runs as a hashed anti-join: one
    EXISTS over `user_id = … OR listener_id = …`, or NOT (EXISTS … OR EXISTS …), is run
    as a subplan per user instead (1.0 M index probes at a million users, ~1.3 s of the
    presence run's 2.3 s)."""

    def party(column: sa.ColumnElement[int | None]) -> sa.Exists:
        return (
            sa.select(calls.c.call_id)
            .where(calls.c.status == CallStatus.ONGOING, column == status.c.user_id)
            .exists()
        )

    return sa.and_(~party(calls.c.user_id), ~party(calls.c.listener_id))


def wait_time_expired(off_call: sa.ColumnElement[bool] | None = None) -> sa.ColumnElement[bool]:
    """A wait_time run out, off any call. On a call it is call cleanup's `wait_time_up`
    signal: that job ends and settles the call, then clears the flags (SPEC §7).
    `off_call`: whether the user is off any call, when already known (else looked up)."""
    return sa.and_(status.c.wait_time <= 0, off_any_call() if off_call is None else off_call)


def busy_without_call(off_call: sa.ColumnElement[bool] | None = None) -> sa.ColumnElement[bool]:
    # rows with an expired wait_time belong to the rule above, counted once
    return sa.and_(
        busy(),
        sa.or_(status.c.wait_time.is_(None), status.c.wait_time > 0),
        off_any_call() if off_call is None else off_call,
    )


class _Changed(NamedTuple):
    user_id: int
    offline: bool
    wait_time: bool
    no_call: bool


def _apply_in_turn(session: Session, cutoff: datetime, now: datetime) -> list[_Changed]:
    """SQLite: each rule's UPDATE … RETURNING in turn (the rules of one row touch
    different columns, so their order does not matter)."""
    changed: dict[str, set[int]] = {}
    clear_busy = {"is_busy": False, "wait_time": None}
    for name, rule, values in (
        ("offline", inactive_online(cutoff), {"is_online": False}),
        ("wait_time", wait_time_expired(), clear_busy),
        ("no_call", busy_without_call(), clear_busy),
    ):
        update = sa.update(status).where(rule).values(updated_at=now, **values)
        changed[name] = set(session.execute(update.returning(status.c.user_id)).scalars())
    ids = sorted(set().union(*changed.values()))
    return [
        _Changed(i, *(i in changed[name] for name in ("offline", "wait_time", "no_call")))
        for i in ids
    ]


def _candidates(cutoff: datetime) -> sa.CTE:
    """The rows a rule may change, in the two scans the planner runs well (an `OR` of the
    rules would test "on a call" per row): the inactive online users, and the busy or
    wait-expired ones off any call (hashed anti-joins), each row with whether it is off
    any call, so that the rules' flags below need no second look at the calls."""
    off_call = sa.select(status.c.user_id, sa.literal(1).label("off_call")).where(
        sa.or_(busy(), status.c.wait_time <= 0), off_any_call()
    )
    inactive = sa.select(status.c.user_id, sa.literal(0).label("off_call")).where(
        inactive_online(cutoff)
    )
    rows = sa.union_all(off_call, inactive).subquery("rows")
    return (
        sa.select(rows.c.user_id, (sa.func.max(rows.c.off_call) == 1).label("off_call"))
        .group_by(rows.c.user_id)
        .cte("candidate")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )


def _flags(candidate: sa.CTE, cutoff: datetime) -> list[sa.Label[bool]]:
    """Each rule of SPEC §7 (`inactive_online`, `wait_time_expired`, `busy_without_call`)
    on a candidate row, read from the row itself: on PostgreSQL a row the app changed
    since the statement began is read again when it is locked, so what is changed and
    reported is what the rules say of the row as it is."""
    return [
        inactive_online(cutoff).label("offline"),
        wait_time_expired(off_call=candidate.c.off_call).label("wait_time"),
        busy_without_call(off_call=candidate.c.off_call).label("no_call"),
    ]


def _as_changed(rows: Iterable[sa.Row[Any]]) -> list[_Changed]:
    # a rule over a NULL column is NULL, as in an UPDATE's WHERE: not matched
    return [_Changed(r.user_id, bool(r.offline), bool(r.wait_time), bool(r.no_call)) for r in rows]


def _matching(session: Session, cutoff: datetime) -> list[_Changed]:
    """Dry-run: every row a rule would change, with the rules it matches."""
    candidate = _candidates(cutoff)
    flagged = (
        sa.select(status.c.user_id, *_flags(candidate, cutoff))
        .join(candidate, candidate.c.user_id == status.c.user_id)
        .subquery()
    )
    query = sa.select(flagged).where(
        sa.or_(flagged.c.offline, flagged.c.wait_time, flagged.c.no_call)
    )
    return _as_changed(session.execute(query.order_by(flagged.c.user_id)))


def _change_unless_held(
    session: Session, cutoff: datetime, now: datetime
) -> tuple[list[_Changed], list[int]]:
    """PostgreSQL, one statement for the three rules: the candidate rows locked in user_id
    order before any is changed (so that an app statement updating several user_status
    rows cannot deadlock with this one) and SKIP LOCKED (a row another session holds is
    not waited for), then changed as their flags say. The rows changed with their rules,
    and the ids skipped because another session held them."""
    candidate = _candidates(cutoff)
    locked = (
        sa.select(status.c.user_id, *_flags(candidate, cutoff))
        .join(candidate, candidate.c.user_id == status.c.user_id)
        .order_by(status.c.user_id)
        .with_for_update(of=status, skip_locked=True)
        .cte("locked")
    )
    clears_busy = sa.or_(locked.c.wait_time, locked.c.no_call)
    updated = (
        sa.update(status)
        .where(status.c.user_id == locked.c.user_id, sa.or_(locked.c.offline, clears_busy))
        .values(
            updated_at=now,
            is_online=sa.case((locked.c.offline, sa.false()), else_=status.c.is_online),
            is_busy=sa.case((clears_busy, sa.false()), else_=status.c.is_busy),
            wait_time=sa.case((clears_busy, sa.null()), else_=status.c.wait_time),
        )
        .returning(status.c.user_id, locked.c.offline, locked.c.wait_time, locked.c.no_call)
        .cte("updated")
    )
    rows = session.execute(
        sa.select(
            candidate.c.user_id,
            updated.c.offline,
            updated.c.wait_time,
            updated.c.no_call,
            updated.c.user_id.is_not(None).label("changed"),
            candidate.c.user_id.in_(sa.select(locked.c.user_id)).label("locked"),
        )
        .select_from(candidate.outerjoin(updated, updated.c.user_id == candidate.c.user_id))
        .order_by(candidate.c.user_id)
    ).all()
    changed = _as_changed(row for row in rows if row.changed)
    return changed, [row.user_id for row in rows if not row.locked]


def cleanup(run: RunContext[None]) -> PresenceReport:
    session, now, settings, apply = run.session, run.now, run.settings, run.apply
    cutoff = inactive_cutoff(now, settings)
    online_before = session.execute(
        sa.select(sa.func.count()).select_from(status).where(online())
    ).scalar_one()
    held: list[int] = []
    if not apply:
        rows = _matching(session, cutoff)
    elif is_sqlite(session):  # the run holds the database's write lock: nothing is held
        rows = _apply_in_turn(session, cutoff, now)
    else:
        rows, held = _change_unless_held(session, cutoff, now)
    offline = [row.user_id for row in rows if row.offline]
    wait_time = [row.user_id for row in rows if row.wait_time]
    no_call = [row.user_id for row in rows if row.no_call]
    return PresenceReport(
        inactive_before=cutoff,
        marked_offline=len(offline),
        cleared_wait_time=len(wait_time),
        cleared_no_call=len(no_call),
        online_after=online_before - len(offline),
        offline_ids=offline,
        wait_time_ids=wait_time,
        no_call_ids=no_call,
        held_by_another_session=len(held),
        held_ids=held,
    )
