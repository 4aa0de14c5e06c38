"""The per-row reference: each job as a team writes it first, and as the original system
billed — load the rows, then per row a few queries, each its own statement, in one
transaction. Dialect-neutral (SQLAlchemy Core on the project's tables), the SPEC's
default settings (the project's own Settings and badge table), and the benchmark's
population (one call per caller, no bad rows).

    python -m benchmarks.reference JOB DATABASE_URL NOW
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from saathii_ops.db.engine import make_engine, parse_url
from saathii_ops.db.tables import listener_badges as badges
from saathii_ops.db.tables import user_calls as calls
from saathii_ops.db.tables import user_roles as roles
from saathii_ops.db.tables import user_status as status
from saathii_ops.db.tables import user_transactions as ledger
from saathii_ops.db.tables import user_wallets as wallets
from saathii_ops.jobs.badges import badge_for_minutes, rates_for
from saathii_ops.settings import Settings

# the SPEC's defaults, and the project's one home of the badge table
SETTINGS = Settings()
TZ = SETTINGS.business_tz


def _coins_per_minute(call_type: str) -> int:
    rate: int = getattr(SETTINGS.coins_per_minute, call_type)
    return rate


def _elapsed(now: datetime, start: datetime) -> int:
    delta = now - start
    return delta.days * 86400 + delta.seconds


def _bill(conn: Connection, now: datetime, call: sa.Row[Any]) -> tuple[int, int]:
    """Charge what the call owes, as far as the balance goes: (coins_spent after, owed)."""
    rate = _coins_per_minute(call.call_type)
    elapsed = _elapsed(now, call.start_time)
    due = rate * (elapsed // 60 + 1) if elapsed >= 0 else 0
    owed = due - call.coins_spent
    if owed <= 0:
        return call.coins_spent, 0
    wallet = conn.execute(
        sa.select(wallets.c.wallet_id, wallets.c.balance_coins).where(
            wallets.c.user_id == call.user_id
        )
    ).one()
    balance = max(wallet.balance_coins, 0)
    if balance >= owed:
        charge = owed
    else:
        charge = max(rate * ((call.coins_spent + balance) // rate) - call.coins_spent, 0)
    if charge > 0:
        conn.execute(
            sa.update(wallets)
            .where(wallets.c.wallet_id == wallet.wallet_id)
            .values(balance_coins=wallets.c.balance_coins - charge, updated_at=now)
        )
        conn.execute(
            sa.insert(ledger).values(
                wallet_id=wallet.wallet_id,
                tx_type="spend",
                coins_change=-charge,
                money_change=Decimal("0.00"),
                created_at=now,
                updated_at=now,
            )
        )
        conn.execute(
            sa.update(calls)
            .where(calls.c.call_id == call.call_id)
            .values(coins_spent=call.coins_spent + charge, updated_at=now)
        )
    return call.coins_spent + charge, owed - charge


def _settle(conn: Connection, now: datetime, call: sa.Row[Any], coins_spent: int) -> None:
    rate = _coins_per_minute(call.call_type)
    elapsed = _elapsed(now, call.start_time)
    badge = conn.execute(
        sa.select(badges.c.audio_rate_per_minute, badges.c.video_rate_per_minute).where(
            badges.c.listener_id == call.listener_id,
            badges.c.date == call.start_time.astimezone(TZ).date(),
        )
    ).first()
    if badge is None:
        per_minute = getattr(rates_for("basic", SETTINGS), call.call_type)
    else:
        per_minute = badge[0] if call.call_type == "audio" else badge[1]
    earnings = (Decimal(per_minute) * (coins_spent // rate)).quantize(Decimal("0.01"))
    conn.execute(
        sa.update(calls)
        .where(calls.c.call_id == call.call_id, calls.c.status == "ongoing")
        .values(
            status="dropped",
            end_time=now,
            duration_seconds=max(elapsed, 0),
            duration_minutes=max(elapsed // 60, 1),
            listener_money_earned=int(earnings),
            updated_at=now,
        )
    )
    if earnings > 0:
        wallet_id = conn.execute(
            sa.select(wallets.c.wallet_id).where(wallets.c.user_id == call.listener_id)
        ).scalar_one()
        conn.execute(
            sa.update(wallets)
            .where(wallets.c.wallet_id == wallet_id)
            .values(withdrawable_money=wallets.c.withdrawable_money + earnings, updated_at=now)
        )
        conn.execute(
            sa.insert(ledger).values(
                wallet_id=wallet_id,
                tx_type="earn",
                coins_change=0,
                money_change=earnings,
                created_at=now,
                updated_at=now,
            )
        )
    for party in (call.user_id, call.listener_id):
        conn.execute(
            sa.update(status)
            .where(status.c.user_id == party)
            .values(is_busy=False, wait_time=None, updated_at=now)
        )


def _ongoing(conn: Connection) -> list[sa.Row[Any]]:
    return list(
        conn.execute(
            sa.select(
                calls.c.call_id,
                calls.c.user_id,
                calls.c.listener_id,
                calls.c.call_type,
                calls.c.start_time,
                calls.c.coins_spent,
            )
            .where(calls.c.status == "ongoing")
            .order_by(calls.c.start_time, calls.c.call_id)
        )
    )


def coins_deduct(conn: Connection, now: datetime) -> None:
    for call in _ongoing(conn):
        coins_spent, unpaid = _bill(conn, now, call)
        if unpaid:
            _settle(conn, now, call, coins_spent)


def calls_cleanup(conn: Connection, now: datetime) -> None:
    stale_before = now - timedelta(minutes=SETTINGS.call_stale_minutes)

    def seen(user_id: int) -> Any:
        return conn.execute(
            sa.select(status.c.last_seen, status.c.wait_time).where(status.c.user_id == user_id)
        ).first()

    for call in _ongoing(conn):
        caller, listener = seen(call.user_id), seen(call.listener_id)
        expired = (
            (caller is not None and caller.last_seen < stale_before)
            or (listener is not None and listener.last_seen < stale_before)
            or _elapsed(now, call.start_time) > SETTINGS.call_max_minutes * 60
            or (caller is not None and caller.wait_time is not None and caller.wait_time <= 0)
        )
        if expired:
            coins_spent, _ = _bill(conn, now, call)
            _settle(conn, now, call, coins_spent)


def presence_cleanup(conn: Connection, now: datetime) -> None:
    cutoff = now - timedelta(minutes=SETTINGS.presence_inactive_minutes)
    on_a_call: set[int] = set()
    for caller, listener in conn.execute(
        sa.select(calls.c.user_id, calls.c.listener_id).where(calls.c.status == "ongoing")
    ):
        on_a_call.update((caller, listener))
    rows = conn.execute(
        sa.select(
            status.c.user_id,
            status.c.is_online,
            status.c.last_seen,
            status.c.is_busy,
            status.c.wait_time,
        ).order_by(status.c.user_id)
    ).all()
    for row in rows:
        if row.is_online and row.last_seen < cutoff:
            conn.execute(
                sa.update(status)
                .where(status.c.user_id == row.user_id)
                .values(is_online=False, updated_at=now)
            )
        stale_flag = row.is_busy or (row.wait_time is not None and row.wait_time <= 0)
        if stale_flag and row.user_id not in on_a_call:
            conn.execute(
                sa.update(status)
                .where(status.c.user_id == row.user_id)
                .values(is_busy=False, wait_time=None, updated_at=now)
            )


def badges_assign(conn: Connection, now: datetime) -> None:
    day = now.astimezone(TZ).date()
    start, end = _business_day(day - timedelta(days=1))
    listeners = conn.execute(
        sa.select(roles.c.user_id)
        .select_from(roles.outerjoin(status, status.c.user_id == roles.c.user_id))
        .where(roles.c.role == "listener", status.c.is_active.is_not(False))
        .order_by(roles.c.user_id)
    ).scalars()
    for listener in list(listeners):
        minutes = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(calls.c.duration_minutes), 0)).where(
                calls.c.listener_id == listener,
                calls.c.status.in_(SETTINGS.counted_call_statuses),
                calls.c.start_time >= start,
                calls.c.start_time < end,
            )
        ).scalar_one()
        badge = badge_for_minutes(minutes, SETTINGS.badge_thresholds)
        rates = rates_for(badge, SETTINGS)
        values = {
            "badge": badge,
            "audio_rate_per_minute": rates.audio,
            "video_rate_per_minute": rates.video,
            "assigned_at": now,
            "updated_at": now,
        }
        existing = conn.execute(
            sa.select(badges.c.listener_id).where(
                badges.c.listener_id == listener, badges.c.date == day
            )
        ).first()
        if existing:
            conn.execute(
                sa.update(badges)
                .where(badges.c.listener_id == listener, badges.c.date == day)
                .values(**values)
            )
        else:
            conn.execute(
                sa.insert(badges).values(listener_id=listener, date=day, created_at=now, **values)
            )


def _business_day(day: date) -> tuple[datetime, datetime]:
    return (
        datetime.combine(day, time(), TZ).astimezone(ZoneInfo("UTC")),
        datetime.combine(day + timedelta(days=1), time(), TZ).astimezone(ZoneInfo("UTC")),
    )


JOBS: dict[str, Callable[[Connection, datetime], None]] = {
    "coins-deduct": coins_deduct,
    "calls-cleanup": calls_cleanup,
    "presence-cleanup": presence_cleanup,
    "badges-assign": badges_assign,
}


def main() -> None:
    job, url, now = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3])
    engine = make_engine(parse_url(url))
    with engine.begin() as conn:
        JOBS[job](conn, now)
    engine.dispose()


if __name__ == "__main__":
    main()
