"""Listeners with calls on a business day, for the badge tests. The badge date D is
2026-11-29; its minutes are those of 2026-11-28 in Asia/Kolkata (UTC+05:30)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.factories import add_call, add_user

IST = ZoneInfo("Asia/Kolkata")
D = date(2026, 11, 29)
# 00:01 on D in Asia/Kolkata, when cron fires; still 2026-11-28 in UTC
NOW = datetime(2026, 11, 28, 18, 31, tzinfo=UTC)


def ist(day: date, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=IST)


def add_listener(session, *minutes: int, day: date = D - timedelta(days=1), **user) -> int:
    """A listener with one completed call per entry of `minutes` on business day `day`."""
    listener = add_user(session, role="listener", **user)
    caller = add_user(session)
    for n, length in enumerate(minutes):
        add_call(
            session,
            caller,
            listener,
            start=ist(day, 9 + n, 0),
            status="completed",
            duration_minutes=length,
        )
    return listener
