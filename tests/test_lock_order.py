"""PostgreSQL only: the jobs lock the user_status rows of one statement in user_id order.

The app updates two user_status rows in one statement (both parties of a call); a job
statement that locks several rows in another order (the table's physical order) can
deadlock with it. Here the rows are stored in descending user_id order, so that a plain
UPDATE would reach the highest first; the test holds the middle row and, while the job
waits for it, finds the lower rows already locked by the job and the higher ones not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from saathii_ops.db import make_engine, parse_url, transaction
from saathii_ops.models import UserStatus
from saathii_ops.services import billing, presence
from saathii_ops.settings import Settings
from tests.billing_checks import wait_for_a_lock_wait
from tests.factories import T0, add_call, add_user

NOW = T0 + timedelta(minutes=30)


@pytest.fixture(autouse=True)
def _postgresql_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL only")


def add_statuses_in_descending_order(engine: Engine, users: list[int], **values: Any) -> None:
    with transaction(engine) as s:
        for user in sorted(users, reverse=True):
            s.execute(sa.insert(UserStatus).values(user_id=user, **values))
        s.commit()


def locked_by_another(engine: Engine, user_id: int) -> bool:
    with engine.connect() as conn:
        try:
            conn.execute(
                sa.select(UserStatus.user_id)
                .where(UserStatus.user_id == user_id)
                .with_for_update(nowait=True)
            )
        except OperationalError as exc:
            assert "could not obtain lock" in str(exc)
            return True
        finally:
            conn.rollback()
    return False


def run_holding_the_middle_row(
    db_url: str, engine: Engine, users: list[int], service: Callable[..., Any]
) -> tuple[list[int], Any]:
    """Run `service` while the test holds the middle row of `users`; the rows the job had
    locked while it waited, and its report."""
    ordered = sorted(users)
    middle = ordered[len(ordered) // 2]
    results: dict[str, Any] = {}

    def work() -> None:
        job_engine = make_engine(parse_url(db_url))
        try:
            with transaction(job_engine) as s:
                results["report"] = service(s, NOW, Settings(), apply=True)
                s.commit()
        except Exception as exc:  # reported by the test
            results["report"] = exc
        finally:
            job_engine.dispose()

    holder = engine.connect()
    holder.execute(
        sa.select(UserStatus.user_id).where(UserStatus.user_id == middle).with_for_update()
    )
    job = threading.Thread(target=work)
    job.start()
    try:
        wait_for_a_lock_wait(engine, job)
        assert job.is_alive(), f"the job did not wait for the held row: {results}"
        locked = [user for user in ordered if user != middle and locked_by_another(engine, user)]
    finally:
        holder.rollback()
        holder.close()
        job.join(60)
    assert not isinstance(results["report"], Exception), results
    return locked, results["report"]


def test_presence_cleanup_locks_its_rows_in_user_id_order(db_url: str, engine: Engine) -> None:
    with transaction(engine) as s:
        users = [add_user(s, online=None) for _ in range(5)]
        s.commit()
    add_statuses_in_descending_order(
        engine, users, is_online=True, last_seen=NOW - timedelta(hours=1), is_busy=True
    )
    locked, report = run_holding_the_middle_row(db_url, engine, users, presence.cleanup)
    assert locked == sorted(users)[:2]
    assert report.offline_ids == sorted(users)


def test_settlement_locks_both_parties_rows_in_user_id_order(db_url: str, engine: Engine) -> None:
    """Two calls whose callers cannot pay: coin deduction ends both and clears the flags of
    all four parties in one statement."""
    with transaction(engine) as s:
        callers = [add_user(s, balance=0, online=None) for _ in range(2)]
        listeners = [add_user(s, role="listener", online=None) for _ in range(2)]
        for caller, listener in zip(callers, listeners, strict=True):
            add_call(s, caller, listener, start=NOW - timedelta(minutes=3), coins_spent=10)
        s.commit()
    users = [*callers, *listeners]
    add_statuses_in_descending_order(
        engine, users, is_online=True, last_seen=NOW, is_busy=True, wait_time=1
    )
    locked, report = run_holding_the_middle_row(db_url, engine, users, billing.deduct)
    assert locked == sorted(users)[:2]
    assert report.calls_ended == 2
    with engine.connect() as conn:
        flags = conn.execute(sa.select(UserStatus.is_busy, UserStatus.wait_time)).all()
    assert [tuple(f) for f in flags] == [(False, None)] * 4
