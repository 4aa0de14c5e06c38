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

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.calls import CallStatus
from saathii_ops.db.engine import is_sqlite
from saathii_ops.db.models import UserCall, UserStatus, table
from saathii_ops.reports import Report
from saathii_ops.runtime.context import RunContext
from saathii_ops.settings import Settings

status = table(UserStatus)
calls = table(UserCall)


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


def on_a_call() -> sa.ColumnElement[bool]:
    """The user is the caller or the listener of an ongoing call.

    Two EXISTS, not one over `user_id = … OR listener_id = …`: PostgreSQL runs each
    (negated) as a hashed anti-join, where the OR was a subplan per user (3.7 s
    against the floor's 1.1 s at a million users)."""

    def party(column: sa.ColumnElement[int | None]) -> sa.Exists:
        return (
            sa.select(calls.c.call_id)
            .where(calls.c.status == CallStatus.ONGOING, column == status.c.user_id)
            .exists()
        )

    return sa.or_(party(calls.c.user_id), party(calls.c.listener_id))


def wait_time_expired() -> sa.ColumnElement[bool]:
    """A wait_time run out, off any call. On a call it is call cleanup's `wait_time_up`
    signal: that job ends and settles the call, then clears the flags (SPEC §7)."""
    return sa.and_(status.c.wait_time <= 0, ~on_a_call())


def busy_without_call() -> sa.ColumnElement[bool]:
    # rows with an expired wait_time belong to the rule above, counted once
    return sa.and_(
        busy(),
        sa.or_(status.c.wait_time.is_(None), status.c.wait_time > 0),
        ~on_a_call(),
    )


def _ids(session: Session, statement: sa.Select[tuple[int]] | sa.Update) -> list[int]:
    return sorted(session.execute(statement).scalars())


def _change_unless_held(
    session: Session, where: sa.ColumnElement[bool], now: datetime, values: dict[str, object]
) -> tuple[list[int], list[int]]:
    """PostgreSQL, one statement: the rows of the rule, locked in user_id order before
    any is changed (so that an app statement updating several user_status rows cannot
    deadlock with this one) and SKIP LOCKED (a row another session holds is not
    waited for); the rows changed, and those skipped because another session held
    them."""
    candidate = (
        sa.select(status.c.user_id).where(where).cte("candidate").prefix_with("MATERIALIZED")
    )
    locked = (
        sa.select(status.c.user_id)
        .where(status.c.user_id.in_(sa.select(candidate.c.user_id)))
        .order_by(status.c.user_id)
        .with_for_update(skip_locked=True)
        .cte("locked")
    )
    updated = (
        sa.update(status)
        .where(status.c.user_id.in_(sa.select(locked.c.user_id)), where)
        .values(updated_at=now, **values)
        .returning(status.c.user_id)
        .cte("updated")
    )
    rows = session.execute(
        sa.select(
            candidate.c.user_id,
            candidate.c.user_id.in_(sa.select(updated.c.user_id)).label("changed"),
            candidate.c.user_id.in_(sa.select(locked.c.user_id)).label("locked"),
        ).order_by(candidate.c.user_id)
    ).all()
    return (
        [row.user_id for row in rows if row.changed],
        [row.user_id for row in rows if not row.locked],
    )


def cleanup(run: RunContext[None]) -> PresenceReport:
    session, now, settings, apply = run.session, run.now, run.settings, run.apply
    cutoff = inactive_cutoff(now, settings)
    online_before = session.execute(
        sa.select(sa.func.count()).select_from(status).where(online())
    ).scalar_one()

    held: set[int] = set()

    def change(where: sa.ColumnElement[bool], **values: object) -> list[int]:
        if not apply:
            return _ids(session, sa.select(status.c.user_id).where(where))
        if is_sqlite(session):  # the run holds the database's write lock
            update = (
                sa.update(status)
                .where(where)
                .values(updated_at=now, **values)
                .returning(status.c.user_id)
            )
            return _ids(session, update)
        changed, skipped = _change_unless_held(session, where, now, values)
        held.update(skipped)
        return changed

    offline = change(inactive_online(cutoff), is_online=False)
    wait_time = change(wait_time_expired(), is_busy=False, wait_time=None)
    no_call = change(busy_without_call(), is_busy=False, wait_time=None)
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
        held_ids=sorted(held),
    )
