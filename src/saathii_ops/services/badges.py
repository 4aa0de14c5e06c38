"""Badge assignment (SPEC §8): each listener's badge for a date, from the call
minutes of the business day before it.

The badge table lives here only: `badge_ladder` orders the thresholds, and both
the pure `badge_for_minutes` and the SQL CASE of the plan are read off it. Per
target date one plan (a SELECT) is read for the report and, in a real run,
upserted with one INSERT … SELECT … ON CONFLICT; the rows written are checked
against the plan before the runner commits.

A real run must read and write the same plan. On PostgreSQL, under READ COMMITTED,
two statements would each see the calls and listeners committed by then (a call
completing in between would change the rows written), so the plan, its upsert and
the report are one statement: WITH plan, written AS (INSERT … RETURNING) SELECT.
SQLite has no DML in a WITH, and needs none: a writing transaction holds the
database's write lock from its first statement, so nothing changes in between.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from saathii_ops.db import is_sqlite
from saathii_ops.errors import PlanChanged
from saathii_ops.models import (
    ListenerBadge,
    Rate,
    UserCall,
    UserRole,
    UserStatus,
    UTCDateTime,
    table,
)
from saathii_ops.reports import Report
from saathii_ops.settings import Badge, BadgeThresholds, Rates, Settings

badges = table(ListenerBadge)
calls = table(UserCall)
roles = table(UserRole)
status = table(UserStatus)

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
    existing = badges.alias("existing")
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
            .outerjoin(
                existing,
                sa.and_(existing.c.listener_id == roles.c.user_id, existing.c.date == day),
            )
        )
        .where(
            roles.c.role == "listener",
            # no user_status row (or a NULL flag) is not an inactive account
            sa.or_(status.c.is_active.is_(None), status.c.is_active.is_(True)),
        )
        .subquery("plan")
    )


def upsert(
    session: Session, plan: sa.Subquery | sa.CTE, day: date, now: datetime
) -> ReturningInsert[Any]:
    """INSERT … SELECT the plan's rows for `day`, replacing the rows already there."""
    insert = sqlite.insert if is_sqlite(session) else postgresql.insert
    at = sa.literal(now, UTCDateTime())
    source = sa.select(
        plan.c.listener_id,
        sa.literal(day, sa.Date()),
        plan.c.badge,
        plan.c.audio_rate_per_minute,
        plan.c.video_rate_per_minute,
        at,
        at,
        at,
    ).where(sa.true())  # SQLite: without a WHERE, "ON CONFLICT" would parse as a join's ON
    statement = insert(badges).from_select(
        [
            "listener_id",
            "date",
            "badge",
            "audio_rate_per_minute",
            "video_rate_per_minute",
            "assigned_at",
            "updated_at",
            "created_at",
        ],
        source,
    )
    replaced = (
        "badge",
        "audio_rate_per_minute",
        "video_rate_per_minute",
        "assigned_at",
        "updated_at",
    )
    return statement.on_conflict_do_update(
        index_elements=[badges.c.listener_id, badges.c.date],
        set_={name: statement.excluded[name] for name in replaced},
    ).returning(badges.c.listener_id, badges.c.badge)


# --- the job --------------------------------------------------------------------


@dataclass
class BadgeRule:
    badge: Badge
    least_minutes: int
    audio_rate_per_minute: Decimal
    video_rate_per_minute: Decimal


@dataclass
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
    badge_table: list[BadgeRule] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)

    def for_people(self) -> dict[str, Any]:
        """A backfill: its range and the badges' totals, not its first date's rows."""
        shown = self.as_dict()
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


def assign(
    session: Session,
    now: datetime,
    settings: Settings,
    *,
    apply: bool,
    dates: Sequence[date] | None = None,
    on_date_done: Callable[[date], None] | None = None,
) -> BadgesReport:
    """Assign the badges of each date in `dates` (default: today in the business timezone)."""
    days = list(dates) if dates is not None else [business_date(now, settings)]
    assignments: list[Assignment] = []
    for day in days:
        written: list[tuple[int, str]] = []
        if apply and not is_sqlite(session):
            planned_rows, written = _plan_and_upsert(session, day, now, settings)
        else:
            planned = plan(day, settings)
            planned_rows = list(session.execute(sa.select(planned).order_by(planned.c.listener_id)))
            if apply:
                upserted = session.execute(upsert(session, planned, day, now))
                written = [(row.listener_id, row.badge) for row in upserted]
        rows = [
            Assignment(
                listener_id=row.listener_id,
                date=day,
                previous_day_minutes=row.minutes,
                badge=row.badge,
                audio_rate_per_minute=row.audio_rate_per_minute,
                video_rate_per_minute=row.video_rate_per_minute,
                replaces=row.replaces,
            )
            for row in planned_rows
        ]
        if apply and sorted(written) != [(a.listener_id, a.badge) for a in rows]:
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
        badge_table=badge_table(settings),
        assignments=assignments,
    )


def _plan_and_upsert(
    session: Session, day: date, now: datetime, settings: Settings
) -> tuple[list[sa.Row[Any]], list[tuple[int, str]]]:
    """PostgreSQL: the plan's rows (by listener) and the (listener, badge) its upsert wrote,
    both from one statement, so from one snapshot of the calls and listeners."""
    planned = sa.select(plan(day, settings)).cte("planned")
    written = upsert(session, planned, day, now).cte("written")
    statement = (
        sa.select(planned, written.c.badge.label("written_badge"))
        .select_from(planned.outerjoin(written, written.c.listener_id == planned.c.listener_id))
        .order_by(planned.c.listener_id)
    )
    rows = list(session.execute(statement))
    wrote = [(row.listener_id, row.written_badge) for row in rows if row.written_badge]
    return rows, wrote


# --- listing --------------------------------------------------------------------


@dataclass
class BadgeRow:
    listener_id: int
    badge: str | None
    audio_rate_per_minute: Decimal
    video_rate_per_minute: Decimal
    assigned_at: datetime | None


@dataclass
class BadgeListing:
    date: date
    listener_id: int | None
    gold: int
    silver: int
    bronze: int
    basic: int
    total: int
    badges: list[BadgeRow]


def listing(session: Session, day: date, listener_id: int | None = None) -> BadgeListing:
    """The listener_badges rows of `day` (of one listener, if given), by listener."""
    query = sa.select(
        badges.c.listener_id,
        badges.c.badge,
        badges.c.audio_rate_per_minute,
        badges.c.video_rate_per_minute,
        badges.c.assigned_at,
    ).where(badges.c.date == day)
    if listener_id is not None:
        query = query.where(badges.c.listener_id == listener_id)
    rows = [BadgeRow(**row._mapping) for row in session.execute(query.order_by("listener_id"))]
    counts = {badge: sum(1 for r in rows if r.badge == badge) for badge in BADGES}
    return BadgeListing(
        date=day,
        listener_id=listener_id,
        gold=counts["gold"],
        silver=counts["silver"],
        bronze=counts["bronze"],
        basic=counts["basic"],
        total=len(rows),
        badges=rows,
    )
