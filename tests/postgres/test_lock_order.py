"""PostgreSQL only: the jobs lock the user_status rows of one statement in user_id order,
and never wait for one another session holds.

The app updates two user_status rows in one statement (both parties of a call); a job
statement that waited for several rows locked in another order could deadlock with it.
The jobs lock in user_id order FOR UPDATE SKIP LOCKED: a job that waits for no row lock
is in no cycle of waits. Here the rows are stored in descending user_id order and the
test holds the middle row for the whole run: the job must finish while it is held,
change every other row, and name the held one (left for the next run).
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

from saathii_ops.billing import charge as billing
from saathii_ops.db.engine import make_engine, parse_url, transaction
from saathii_ops.db.tables import user_status
from saathii_ops.jobs import presence
from saathii_ops.settings import Settings
from tests.factories import T0, add_call, add_user, run_context

NOW = T0 + timedelta(minutes=30)


pytestmark = pytest.mark.usefixtures("postgresql_only")


def add_statuses_in_descending_order(engine: Engine, users: list[int], **values: Any) -> None:
    with transaction(engine) as s:
        for user in sorted(users, reverse=True):
            s.execute(sa.insert(user_status).values(user_id=user, **values))
        s.commit()


def locked_by_another(engine: Engine, user_id: int) -> bool:
    with engine.connect() as conn:
        try:
            conn.execute(
                sa.select(user_status.c.user_id)
                .where(user_status.c.user_id == user_id)
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
) -> tuple[int, Any]:
    """Run `service` while the test holds the middle row of `users` (for longer than the
    run's 2 s statement timeout, had it waited); the middle row, and the job's report."""
    ordered = sorted(users)
    middle = ordered[len(ordered) // 2]
    results: dict[str, Any] = {}

    def work() -> None:
        job_engine = make_engine(parse_url(db_url))
        try:
            with transaction(job_engine) as s:
                s.execute(sa.text("SET LOCAL statement_timeout = 2000"))
                results["report"] = service(run_context(s, NOW, Settings(), apply=True))
                s.commit()
        except Exception as exc:  # reported by the test
            results["report"] = exc
        finally:
            job_engine.dispose()

    holder = engine.connect()
    holder.execute(
        sa.select(user_status.c.user_id).where(user_status.c.user_id == middle).with_for_update()
    )
    job = threading.Thread(target=work)
    job.start()
    try:
        job.join(30)
        assert not job.is_alive(), "the job waited for the held row"
        assert not locked_by_another(engine, ordered[0]), "the job's locks end with its run"
    finally:
        holder.rollback()
        holder.close()
        job.join(60)
    assert not isinstance(results["report"], Exception), results
    return middle, results["report"]


def test_presence_cleanup_skips_a_held_row_and_changes_the_others(
    db_url: str, engine: Engine
) -> None:
    with transaction(engine) as s:
        users = [add_user(s, online=None) for _ in range(5)]
        s.commit()
    add_statuses_in_descending_order(
        engine, users, is_online=True, last_seen=NOW - timedelta(hours=1), is_busy=True
    )
    middle, report = run_holding_the_middle_row(db_url, engine, users, presence.cleanup)
    assert report.offline_ids == sorted(set(users) - {middle})
    assert report.held_ids == [middle]


def test_settlement_leaves_a_call_whose_party_row_is_held(db_url: str, engine: Engine) -> None:
    """Two calls whose callers cannot pay: coin deduction ends both and clears the flags of
    all four parties in one statement, but the first listener's row is held: that call is
    left whole for the next run, which ends it."""
    with transaction(engine) as s:
        callers = [add_user(s, balance=0, online=None) for _ in range(2)]
        listeners = [add_user(s, role="listener", online=None) for _ in range(2)]
        calls = [
            add_call(s, caller, listener, start=NOW - timedelta(minutes=3), coins_spent=10)
            for caller, listener in zip(callers, listeners, strict=True)
        ]
        s.commit()
    users = [*callers, *listeners]
    add_statuses_in_descending_order(
        engine, users, is_online=True, last_seen=NOW, is_busy=True, wait_time=1
    )
    middle, report = run_holding_the_middle_row(db_url, engine, users, billing.deduct)
    assert middle == listeners[0]
    assert [e.call_id for e in report.ended] == [calls[1]]
    assert [(h.call_id, h.held) for h in report.held] == [(calls[0], "the listener's user_status")]

    def flags() -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(user_status.c.is_busy, user_status.c.wait_time).order_by(
                    user_status.c.user_id
                )
            )
            return [tuple(f) for f in rows]

    assert flags() == [(True, 1), (False, None), (True, 1), (False, None)]
    with transaction(engine) as s:
        again = billing.deduct(run_context(s, NOW, Settings(), apply=True))
        s.commit()
    assert [e.call_id for e in again.ended] == [calls[0]] and again.held == []
    assert flags() == [(False, None)] * 4
