"""A job run as the runner records it: its audit rows, the users it marks offline, a
service that takes its time inside the run's transaction or fails some rows."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from saathii_ops.db.engine import is_sqlite, transaction
from saathii_ops.db.tables import ops_job_runs, user_status
from saathii_ops.reports import Report
from saathii_ops.runtime.locks import job_lock
from tests.factories import T0, add_call, add_user

NOW = T0 + timedelta(minutes=10)  # a user last seen at T0 is stale


def recorded_runs(engine: Engine) -> list[tuple[str, str | None, str | None]]:
    """(outcome, reason, error) of each recorded run, oldest first."""
    with transaction(engine) as s:
        rows = s.execute(
            sa.select(ops_job_runs.c.outcome, ops_job_runs.c.reason, ops_job_runs.c.error).order_by(
                ops_job_runs.c.run_id
            )
        ).all()
    return [tuple(r) for r in rows]


def online_flags(engine: Engine) -> list[bool | None]:
    """Each user's is_online, by user_id."""
    with transaction(engine) as s:
        return list(s.scalars(sa.select(user_status.c.is_online).order_by(user_status.c.user_id)))


def add_stale_user(engine: Engine) -> int:
    """A user online but last seen at T0: presence cleanup marks them offline at NOW."""
    with transaction(engine) as s:
        user = add_user(s, online=True, last_seen=T0)
        s.commit()
    return user


def sleep_in_the_run(session: Session, seconds: float) -> None:
    """Time spent inside the run's transaction, on the database server where there is one."""
    if is_sqlite(session):
        session.execute(sa.text("SELECT 1"))
        time.sleep(seconds)
    else:
        session.execute(sa.text("SELECT pg_sleep(:s)"), {"s": seconds})


@dataclass
class PartlyFailed(Report):
    """A report of 3 rows changed and 1 that failed."""

    changed: int

    @property
    def failed_rows(self) -> int:
        return 1


def partly_failing_service(run):  # type: ignore[no-untyped-def]
    return PartlyFailed(changed=3)


def add_a_call_to_charge(engine: Engine) -> None:
    """A call 150 s old whose caller has 1000 coins: coins-deduct charges it."""
    with transaction(engine) as s:
        listener = add_user(s, role="listener", balance=0)
        add_call(s, add_user(s, balance=1000), listener, start=T0 - timedelta(seconds=150))
        s.commit()


@contextmanager
def lock_held_elsewhere(engine: Engine, lock_name: str) -> Iterator[None]:
    """Another session holds the job lock `lock_name` for the duration of the block."""
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with transaction(engine) as s, job_lock(s, lock_name) as acquired:
            assert acquired
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert holding.wait(10)
        yield
    finally:
        release.set()
        holder.join()
