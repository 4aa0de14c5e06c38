"""Small builders for hand-made test data; each returns the new row's id."""

from __future__ import annotations

import dataclasses
import itertools
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.db.tables import (
    listener_badges,
    ops_job_controls,
    ops_job_runs,
    user_calls,
    user_roles,
    user_status,
    user_transactions,
    user_wallets,
    users,
)
from saathii_ops.reports import Report
from saathii_ops.runtime.context import RunContext, new_run_id
from saathii_ops.runtime.registry import Job
from saathii_ops.settings import Settings

_serial = itertools.count(1)

T0 = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)  # 11:30 in Asia/Kolkata


def add_user(
    session: Session,
    *,
    role: str | None = "customer",
    balance: int | None = None,
    money: Decimal = Decimal("0.00"),
    online: bool | None = None,
    last_seen: datetime | None = None,
    busy: bool = False,
    wait_time: int | None = None,
    active: bool = True,
) -> int:
    """A user with an optional role, wallet (coins and money backed by ledger rows), status row."""
    n = next(_serial)
    user_id = session.execute(
        sa.insert(users)
        .values(username=f"u{n:08d}", dob=date(1995, 5, 5), phone=f"+9190{n:08d}")
        .returning(users.c.user_id)
    ).scalar_one()
    if role:
        session.execute(sa.insert(user_roles).values(user_id=user_id, role=role))
    if balance is not None:
        wallet_id = session.execute(
            sa.insert(user_wallets)
            .values(user_id=user_id, balance_coins=balance, withdrawable_money=money)
            .returning(user_wallets.c.wallet_id)
        ).scalar_one()
        if balance:
            session.execute(
                sa.insert(user_transactions).values(
                    wallet_id=wallet_id, tx_type="purchase", coins_change=balance
                )
            )
        if money:
            session.execute(
                sa.insert(user_transactions).values(
                    wallet_id=wallet_id, tx_type="earn", coins_change=0, money_change=money
                )
            )
    if online is not None:
        session.execute(
            sa.insert(user_status).values(
                user_id=user_id,
                is_online=online,
                last_seen=last_seen or T0,
                is_busy=busy,
                wait_time=wait_time,
                is_active=active,
            )
        )
    return user_id


def add_call(
    session: Session,
    caller: int | None,
    listener: int | None,
    *,
    start: datetime,
    call_type: str | None = "audio",
    coins_spent: int | None = 0,
    status: str = "ongoing",
    duration_minutes: int | None = None,
) -> int:
    return session.execute(
        sa.insert(user_calls)
        .values(
            user_id=caller,
            listener_id=listener,
            call_type=call_type,
            start_time=start,
            coins_spent=coins_spent,
            status=status,
            duration_minutes=duration_minutes,
        )
        .returning(user_calls.c.call_id)
    ).scalar_one()


def add_badge(
    session: Session, listener: int, day: date, badge: str, audio: str, video: str
) -> None:
    session.execute(
        sa.insert(listener_badges).values(
            listener_id=listener,
            date=day,
            badge=badge,
            audio_rate_per_minute=Decimal(audio),
            video_rate_per_minute=Decimal(video),
        )
    )


def add_pause(
    session: Session,
    job: str,
    changed_at: datetime,
    *,
    changed_by: str = "test",
    reason: str | None = None,
) -> None:
    """A job's pause switch, on (the row `jobs pause` writes)."""
    session.execute(
        sa.insert(ops_job_controls).values(
            job=job, paused=True, changed_at=changed_at, changed_by=changed_by, reason=reason
        )
    )


def add_run(
    session: Session,
    job: str,
    outcome: str,
    started_at: datetime,
    *,
    reason: str | None = None,
    error: str | None = None,
    counts: dict[str, int] | None = None,
    seconds: float = 1,
    host: str = "test-host",
    run_now: datetime | None = None,
) -> int:
    """A row of the job-runs audit table, finished a second (`seconds`) after it started."""
    return session.execute(
        sa.insert(ops_job_runs)
        .values(
            job=job,
            started_at=started_at,
            finished_at=started_at + timedelta(seconds=seconds),
            outcome=outcome,
            reason=reason,
            counts=counts,
            error=error,
            host=host,
            run_now=run_now or started_at,
        )
        .returning(ops_job_runs.c.run_id)
    ).scalar_one()


def run_context(
    session: Session,
    now: datetime,
    settings: Settings,
    *,
    apply: bool,
    options: object = None,
) -> RunContext[Any]:
    """What the runner hands a job's service, for a test calling the service itself."""
    return RunContext(session, now, new_run_id(), apply, settings, options)


def job_with_service(job: Job, service: Callable[[RunContext[Any]], Report]) -> Job:
    """`job`'s registry entry with a test's own service: the runner resolves it like any."""
    name = f"service_{next(_injected)}"
    setattr(sys.modules[__name__], name, service)
    return dataclasses.replace(job, service=f"{__name__}:{name}")


_injected = itertools.count()
