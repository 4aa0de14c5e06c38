"""Time arithmetic in SQL, the same on both dialects."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

# --- time arithmetic in SQL, the same on both dialects ---------------------------
#
# SQLite has no time zones and only float julian days, so these two are Python
# functions registered on every SQLite connection: exact, not approximate.


class elapsed_seconds(FunctionElement[int]):
    """Whole seconds from `start` to `now`, rounded down (negative when start is later);
    NULL when `start` is not a finite time."""

    type = sa.BigInteger()
    inherit_cache = True

    def __init__(self, now: datetime, start: sa.ColumnElement[datetime]) -> None:
        from saathii_ops.db.tables import UTCDateTime

        super().__init__(sa.bindparam(None, now, type_=UTCDateTime()), start)


@compiles(elapsed_seconds, "postgresql")
def _elapsed_seconds_pg(element: elapsed_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    now, start = (compiler.process(c, **kw) for c in element.clauses)
    # NULL for an infinite start_time, which PostgreSQL cannot subtract from (a bad row)
    return (
        f"CASE WHEN isfinite({start}) "
        f"THEN CAST(floor(extract(epoch FROM ({now} - {start}))) AS BIGINT) END"
    )


@compiles(elapsed_seconds, "sqlite")
def _elapsed_seconds_sqlite(element: elapsed_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"saathii_elapsed_seconds({compiler.process(element.clauses, **kw)})"


def sqlite_elapsed_seconds(now: str | None, start: str | None) -> int | None:
    if now is None or start is None:
        return None
    try:
        delta = datetime.fromisoformat(now) - datetime.fromisoformat(start)
    except (TypeError, ValueError):  # not a time a datetime can hold (a bad row)
        return None
    return delta.days * 86400 + delta.seconds  # timedelta keeps 0 <= seconds: this is floor


class local_date(FunctionElement[date]):
    """The calendar date of a UTC timestamp column in the time zone `tz` (a business date)."""

    type = sa.Date()
    inherit_cache = True

    def __init__(self, column: sa.ColumnElement[datetime], tz: str) -> None:
        super().__init__(column, sa.bindparam(None, tz, type_=sa.String()))


@compiles(local_date, "postgresql")
def _local_date_pg(element: local_date, compiler: SQLCompiler, **kw: Any) -> str:
    column, tz = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(timezone({tz}, {column}) AS DATE)"


@compiles(local_date, "sqlite")
def _local_date_sqlite(element: local_date, compiler: SQLCompiler, **kw: Any) -> str:
    return f"saathii_local_date({compiler.process(element.clauses, **kw)})"


def sqlite_local_date(value: str | None, tz: str) -> str | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return moment.astimezone(ZoneInfo(tz)).date().isoformat()
