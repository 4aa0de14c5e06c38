"""Badge assignment (SPEC §8): each listener's badge for a date, from the call
minutes of the business day before it.

The badge table lives here only: `badge_ladder` orders the thresholds, and both
the pure `badge_for_minutes` and the SQL CASE of the plan are read off it. Per
target date one plan (a SELECT) is read for the report and, in a real run,
written: an UPDATE of the listeners' rows for the date, then an INSERT … SELECT of
the listeners with none (no ON CONFLICT target: the app's table may lack its key and
hold two rows for a listener and day, see `one_row_each`); the rows written are
checked against the plan before the runner commits.

A real run must read and write the same plan. On PostgreSQL, under READ COMMITTED,
two statements would each see the calls and listeners committed by then (a call
completing in between would change the rows written), so the plan, its writes and
the report are one statement: WITH plan, locked, updated AS (UPDATE … RETURNING),
inserted AS (INSERT … RETURNING) SELECT. Its rows for the date are locked FOR UPDATE
SKIP LOCKED: a listener whose row another session holds is left, named, for the next
run. SQLite has no DML in a WITH, and needs none: a writing transaction holds the
database's write lock from its first statement, so nothing changes in between.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.db.engine import is_sqlite
from saathii_ops.db.tables import Rate, UTCDateTime
from saathii_ops.db.tables import listener_badges as badges
from saathii_ops.db.tables import user_calls as calls
from saathii_ops.db.tables import user_roles as roles
from saathii_ops.db.tables import user_status as status
from saathii_ops.errors import PlanChanged
from saathii_ops.reports import Report
from saathii_ops.runtime.context import RunContext
from saathii_ops.settings import Badge, BadgeThresholds, Rates, Settings

BADGES: tuple[Badge, ...] = ("gold", "silver", "bronze", "basic")

T = TypeVar("T")


# --- the badge table ------------------------------------------------------------


def badge_ladder(thresholds: BadgeThresholds) -> list[tuple[Badge, int]]:
    """(badge, least minutes) from the highest badge down; fewer minutes than all earn basic."""
    return [("gold", thresholds.gold), ("silver", thresholds.silver), ("bronze", thresholds.bronze)]


def badge_for_minutes(minutes: int, thresholds: BadgeThresholds) -> Badge:
    return next((badge for badge, least in badge_ladder(thresholds) if minutes >= least), "basic")


def by_badge(
    minutes: sa.ColumnElement[int],
    thresholds: BadgeThresholds,
    values: Mapping[Badge, T],
    type_: sa.types.TypeEngine[T],
) -> sa.ColumnElement[T]:
    """SQL for `values[badge_for_minutes(minutes)]`: a CASE read off the same ladder."""
    return sa.case(
        *(
            (minutes >= least, sa.literal(values[badge], type_))
            for badge, least in badge_ladder(thresholds)
        ),
        else_=sa.literal(values["basic"], type_),
    )


def rates_for(badge: Badge, settings: Settings) -> Rates:
    rates: Rates = getattr(settings.badge_rates, badge)
    return rates


# --- business days --------------------------------------------------------------


def business_date(moment: datetime, settings: Settings) -> date:
    """The calendar date of an instant in the business timezone."""
    return moment.astimezone(settings.business_tz).date()


def business_day(day: date, settings: Settings) -> tuple[datetime, datetime]:
    """The business day `day` as the UTC instants [start, end).

    Computed here rather than in SQL, so the query compares start_time with two
    instants (the start_time index serves it) and no session time zone matters.
    """
    tz = settings.business_tz
    start = datetime.combine(day, time.min, tz)
    end = datetime.combine(day + timedelta(days=1), time.min, tz)
    return start.astimezone(UTC), end.astimezone(UTC)


# --- the app's rows -------------------------------------------------------------


def one_row_each(where: sa.ColumnElement[bool], name: str) -> sa.Subquery:
    """The listener_badges rows matching `where`, one per listener and date.

    The app's table may lack its key (listener_id, date) and hold two rows for one
    listener and day; every job reads the same one (docs/decisions.md#badges): the
    latest assigned_at, then updated_at, then created_at (a missing time is the
    oldest), then the highest audio rate, then the highest video rate. Rows equal in
    all of these give the same rates, whichever is read.
    """
    b = badges
    ranked = (
        sa.select(
            b,
            sa.func.row_number()
            .over(
                partition_by=(b.c.listener_id, b.c.date),
                order_by=(
                    b.c.assigned_at.desc().nulls_last(),
                    b.c.updated_at.desc().nulls_last(),
                    b.c.created_at.desc().nulls_last(),
                    b.c.audio_rate_per_minute.desc(),
                    b.c.video_rate_per_minute.desc(),
                ),
            )
            .label("preference"),
        )
        .where(where)
        .subquery(f"{name}_ranked")
    )
    return sa.select(ranked).where(ranked.c.preference == 1).subquery(name)


# --- the plan -------------------------------------------------------------------


def plan(day: date, settings: Settings) -> sa.Subquery:
    """Every badge to assign for `day`: one row per listener whose account is not inactive.

    Columns: listener_id, minutes (on the business day before `day`), badge,
    audio_rate_per_minute, video_rate_per_minute, replaces (the badge of the
    row for `day` it replaces, NULL when there is none).
    """
    start, end = business_day(day - timedelta(days=1), settings)
    minutes_by_listener = (
        sa.select(
            calls.c.listener_id,
            sa.func.sum(sa.func.coalesce(calls.c.duration_minutes, 0)).label("minutes"),
        )
        .where(
            calls.c.status.in_(settings.counted_call_statuses),
            calls.c.start_time >= sa.literal(start, UTCDateTime()),
            calls.c.start_time < sa.literal(end, UTCDateTime()),
        )
        .group_by(calls.c.listener_id)
        .subquery("minutes_by_listener")
    )
    minutes = sa.func.coalesce(minutes_by_listener.c.minutes, 0)
    thresholds = settings.badge_thresholds
    rates = {badge: rates_for(badge, settings) for badge in BADGES}
    existing = one_row_each(badges.c.date == day, "existing")
    return (
        sa.select(
            roles.c.user_id.label("listener_id"),
            minutes.label("minutes"),
            by_badge(minutes, thresholds, {b: b for b in BADGES}, sa.String(20)).label("badge"),
            by_badge(minutes, thresholds, {b: r.audio for b, r in rates.items()}, Rate).label(
                "audio_rate_per_minute"
            ),
            by_badge(minutes, thresholds, {b: r.video for b, r in rates.items()}, Rate).label(
                "video_rate_per_minute"
            ),
            existing.c.badge.label("replaces"),
        )
        .select_from(
            roles.outerjoin(status, status.c.user_id == roles.c.user_id)
            .outerjoin(minutes_by_listener, minutes_by_listener.c.listener_id == roles.c.user_id)
            .outerjoin(existing, existing.c.listener_id == roles.c.user_id)
        )
        .where(
            roles.c.role == "listener",
            # no user_status row (or a NULL flag) is not an inactive account
            sa.or_(status.c.is_active.is_(None), status.c.is_active.is_(True)),
        )
        .subquery("plan")
    )


def _written_values(
    plan: sa.FromClause, day: date, now: datetime
) -> dict[str, sa.ColumnElement[Any]]:
    at = sa.literal(now, UTCDateTime())
    return {
        "listener_id": plan.c.listener_id,
        "date": sa.literal(day, sa.Date()),
        "badge": plan.c.badge,
        "audio_rate_per_minute": plan.c.audio_rate_per_minute,
        "video_rate_per_minute": plan.c.video_rate_per_minute,
        "assigned_at": at,
        "updated_at": at,
        "created_at": at,
    }


def update_existing(
    plan: sa.FromClause, day: date, now: datetime, *, held: sa.Select[Any] | None = None
) -> sa.Update:
    """UPDATE … FROM the plan: each listener's rows for `day` (every one, where the app's
    table without its key holds two) take the plan's badge; not those of `held`."""
    values = _written_values(plan, day, now)
    update = sa.update(badges).where(
        badges.c.listener_id == plan.c.listener_id, badges.c.date == day
    )
    if held is not None:
        update = update.where(plan.c.listener_id.not_in(held))
    replaced = (
        "badge",
        "audio_rate_per_minute",
        "video_rate_per_minute",
        "assigned_at",
        "updated_at",
    )
    return update.values({name: values[name] for name in replaced})


def insert_missing(session: Session, plan: sa.FromClause, day: date, now: datetime) -> Any:
    """INSERT … SELECT the plan's rows of the listeners with no row for `day`. No ON CONFLICT
    target: the app's table may lack its key; a row another session inserts meanwhile
    is left as it is (not written: the next run replaces it)."""
    # here, not at import: billing imports this module for its rates, and a job run's
    # start-up should not load the PostgreSQL dialect on SQLite (docs/performance.md)
    from sqlalchemy.dialects import postgresql, sqlite

    insert = sqlite.insert if is_sqlite(session) else postgresql.insert
    values = _written_values(plan, day, now)
    source = sa.select(*values.values()).where(
        ~sa.exists().where(badges.c.listener_id == plan.c.listener_id, badges.c.date == day)
    )
    return insert(badges).from_select(list(values), source).on_conflict_do_nothing()


# --- the job --------------------------------------------------------------------


@dataclass
class BadgeRule:
    badge: Badge
    least_minutes: int
    audio_rate_per_minute: Decimal
    video_rate_per_minute: Decimal


@dataclass(slots=True)  # one per listener and date: a third of the memory without a __dict__
class Assignment:
    listener_id: int
    date: date
    previous_day_minutes: int
    badge: Badge
    audio_rate_per_minute: Decimal
    video_rate_per_minute: Decimal
    replaces: Badge | None


@dataclass
class BadgesReport(Report):
    dates: list[date]
    counted_statuses: list[str]
    gold: int
    silver: int
    bronze: int
    basic: int
    total: int
    replaced: int
    # listeners whose row for the date another session held (or wrote meanwhile): left
    # for the next run, not counted above
    held_listener_ids: list[int] = field(default_factory=list)
    badge_table: list[BadgeRule] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)

    def for_people(self) -> dict[str, Any]:
        """A backfill: its range and the badges' totals, not its first date's rows."""
        shown = super().for_people()
        if len(self.dates) > 1:
            first, last = self.dates[0], self.dates[-1]
            shown["dates"] = f"{first} to {last} ({len(self.dates)} days)"
            shown["assignments"] = f"{len(self.assignments)} (--json lists each)"
        return shown


def badge_table(settings: Settings) -> list[BadgeRule]:
    least = dict(badge_ladder(settings.badge_thresholds))
    return [
        BadgeRule(badge, least.get(badge, 0), rates.audio, rates.video)
        for badge in BADGES
        for rates in [rates_for(badge, settings)]
    ]


@dataclass(frozen=True)
class AssignOptions:
    dates: Sequence[date] | None = None  # default: today in the business timezone
    on_date_done: Callable[[date], None] | None = None  # a backfill's progress


def assign(run: RunContext[AssignOptions | None]) -> BadgesReport:
    """Assign the badges of each date in `dates` (default: today in the business timezone)."""
    session, now, settings, apply = run.session, run.now, run.settings, run.apply
    options = run.options or AssignOptions()
    dates, on_date_done = options.dates, options.on_date_done
    days = list(dates) if dates is not None else [business_date(now, settings)]
    assignments: list[Assignment] = []
    # the few distinct badges and rates, one object each instead of one per listener
    shared: dict[Any, Any] = {}
    held: list[int] = []
    for day in days:
        rows: list[Assignment] = []
        changed = False
        if apply and not is_sqlite(session):
            for row in _plan_and_write(session, day, now, settings):
                if row.held or row.written_low is None:
                    held.append(row.listener_id)
                    continue
                rows.append(_assignment(row, day, shared))
                changed |= not (row.written_low == row.written_high == row.badge)
        elif apply:
            rows, changed = _plan_and_write_sqlite(session, day, now, settings, shared)
        else:
            planned = plan(day, settings)
            ordered = sa.select(planned).order_by(planned.c.listener_id)
            rows = [_assignment(row, day, shared) for row in _streamed(session, ordered)]
        if changed:
            raise PlanChanged(
                f"the badges written for {day} differ from the plan; nothing was saved"
            )
        assignments.extend(rows)
        if on_date_done is not None:
            on_date_done(day)

    counts = {badge: sum(1 for a in assignments if a.badge == badge) for badge in BADGES}
    return BadgesReport(
        dates=days,
        counted_statuses=list(settings.counted_call_statuses),
        gold=counts["gold"],
        silver=counts["silver"],
        bronze=counts["bronze"],
        basic=counts["basic"],
        total=len(assignments),
        replaced=sum(1 for a in assignments if a.replaces is not None),
        held_listener_ids=held,
        badge_table=badge_table(settings),
        assignments=assignments,
    )


def _assignment(row: sa.Row[Any], day: date, shared: dict[Any, Any]) -> Assignment:
    return Assignment(
        listener_id=row.listener_id,
        date=day,
        previous_day_minutes=row.minutes,
        badge=shared.setdefault(row.badge, row.badge),
        audio_rate_per_minute=shared.setdefault(
            row.audio_rate_per_minute, row.audio_rate_per_minute
        ),
        video_rate_per_minute=shared.setdefault(
            row.video_rate_per_minute, row.video_rate_per_minute
        ),
        replaces=shared.setdefault(row.replaces, row.replaces),
    )


def _streamed(session: Session, statement: sa.Select[Any]) -> Iterator[sa.Row[Any]]:
    """The statement's rows fetched a batch at a time, not all held at once."""
    return iter(session.execute(statement, execution_options={"yield_per": 5000}))


def _plan_and_write(
    session: Session, day: date, now: datetime, settings: Settings
) -> Iterator[sa.Row[Any]]:
    """PostgreSQL: the plan's rows (by listener), each with the badges written for it
    (`written_low`, `written_high`: one value unless a row differs from the plan) and
    whether another session holds its row for `day` (`held`), from one statement, so
    from one snapshot of the calls and listeners.

    The rows for `day` are locked FOR UPDATE SKIP LOCKED: a listener with a row another
    session holds is not written (the run never waits for it) and is left for the next
    run."""
    planned = sa.select(plan(day, settings)).cte("planned")
    on_day = badges.c.date == day
    locked = (
        sa.select(badges.c.listener_id)
        .where(on_day)
        .order_by(badges.c.listener_id)
        .with_for_update(skip_locked=True)
        .cte("locked")
    )
    # a listener with more rows for the day than the run could lock
    held = (
        sa.select(badges.c.listener_id).where(on_day).except_all(sa.select(locked.c.listener_id))
    ).cte("held")
    held_ids = sa.select(held.c.listener_id)
    updated = (
        update_existing(planned, day, now, held=held_ids)
        .returning(badges.c.listener_id, badges.c.badge)
        .cte("updated")
    )
    inserted = (
        insert_missing(session, planned, day, now)
        .returning(badges.c.listener_id, badges.c.badge)
        .cte("inserted")
    )
    written = _written_badges(updated, inserted)
    statement = (
        sa.select(
            planned,
            written.c.low.label("written_low"),
            written.c.high.label("written_high"),
            planned.c.listener_id.in_(held_ids).label("held"),
        )
        .select_from(planned.outerjoin(written, written.c.listener_id == planned.c.listener_id))
        .order_by(planned.c.listener_id)
    )
    # not a server-side cursor: PostgreSQL declares none over a data-modifying WITH;
    # the driver holds the rows, each becomes a Python row only as it is read
    return iter(session.execute(statement))


def _written_badges(updated: sa.CTE, inserted: sa.CTE) -> sa.CTE:
    """Per listener, the lowest and highest badge the statement wrote (updated or
    inserted): one value unless a row differs from the plan."""
    both = sa.union_all(
        sa.select(updated.c.listener_id, updated.c.badge),
        sa.select(inserted.c.listener_id, inserted.c.badge),
    ).subquery("both")
    return (
        sa.select(
            both.c.listener_id,
            sa.func.min(both.c.badge).label("low"),
            sa.func.max(both.c.badge).label("high"),
        )
        .group_by(both.c.listener_id)
        .cte("written")
    )


# SQLite, real run: the plan of one date, stored once for its writes and its check
SQLITE_PLAN = sa.Table(
    "saathii_badge_plan",
    sa.MetaData(),
    sa.Column("listener_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("minutes", sa.BigInteger),
    sa.Column("badge", sa.String(20)),
    sa.Column("audio_rate_per_minute", Rate),
    sa.Column("video_rate_per_minute", Rate),
    sa.Column("replaces", sa.String(20)),
    prefixes=["TEMPORARY"],
)


def _plan_and_write_sqlite(
    session: Session, day: date, now: datetime, settings: Settings, shared: dict[Any, Any]
) -> tuple[list[Assignment], bool]:
    """SQLite: the plan stored once, read, written (UPDATE, then INSERT) and checked
    against the rows written. The run holds the database's write lock: no row is held,
    nothing changes in between. Returns the assignments and whether the rows written
    differ from them."""
    planned = sa.select(plan(day, settings)).subquery()
    SQLITE_PLAN.create(session.connection())
    session.execute(sa.insert(SQLITE_PLAN).from_select(list(planned.c.keys()), sa.select(planned)))
    ordered = sa.select(SQLITE_PLAN).order_by(SQLITE_PLAN.c.listener_id)
    rows = [_assignment(row, day, shared) for row in _streamed(session, ordered)]
    session.execute(update_existing(SQLITE_PLAN, day, now))
    session.execute(insert_missing(session, SQLITE_PLAN, day, now))
    low, high = sa.func.min(badges.c.badge), sa.func.max(badges.c.badge)
    written = session.execute(
        sa.select(badges.c.listener_id, low)
        .where(badges.c.date == day, badges.c.listener_id.in_(sa.select(SQLITE_PLAN.c.listener_id)))
        .group_by(badges.c.listener_id)
        .having(low == high)
        .order_by(badges.c.listener_id)
    ).all()
    SQLITE_PLAN.drop(session.connection())
    return rows, [tuple(w) for w in written] != [(a.listener_id, a.badge) for a in rows]
