"""`badges list`: the listener_badges rows of a date, counted by badge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.db.tables import listener_badges as badges
from saathii_ops.jobs.badges import BADGES


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
