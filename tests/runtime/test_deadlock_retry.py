"""A deadlock or a serialization failure is retried once (PostgreSQL); a second one fails
the run."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.jobs import presence
from saathii_ops.runtime.registry import get_job
from saathii_ops.runtime.runner import run_job
from saathii_ops.settings import Settings
from tests.factories import job_with_service
from tests.support.runs import (
    NOW,
    add_stale_user,
    online_flags,
    recorded_runs,
)


def _raise_sqlstate(session: sa.orm.Session, code: str) -> None:
    """The server raising the error a deadlock (or a serialization failure) raises."""
    session.execute(
        sa.text(
            f"DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '{code}', "
            "MESSAGE = 'deadlock detected (simulated)'; END $$"
        )
    )


@pytest.mark.parametrize("code", ["40P01", "40001"])
def test_a_deadlock_is_retried_once(postgresql_only: None, engine: Engine, code: str) -> None:
    add_stale_user(engine)
    attempts: list[int] = []

    def deadlocks_once(run):  # type: ignore[no-untyped-def]
        session = run.session
        report = presence.cleanup(run)
        attempts.append(1)
        if len(attempts) == 1:
            _raise_sqlstate(session, code)
        return report

    result = run_job(
        engine,
        Settings(),
        job_with_service(get_job("presence-cleanup"), deadlocks_once),
        now=NOW,
        dry_run=False,
    )
    assert (result.outcome, len(attempts)) == ("ok", 2)
    assert result.report is not None and result.report.counts()["marked_offline"] == 1
    assert recorded_runs(engine) == [("ok", None, None)]
    assert online_flags(engine) == [False]


def test_a_second_deadlock_fails_the_run(postgresql_only: None, engine: Engine) -> None:
    add_stale_user(engine)
    attempts: list[int] = []

    def always_deadlocks(run):  # type: ignore[no-untyped-def]
        session = run.session
        presence.cleanup(run)
        attempts.append(1)
        _raise_sqlstate(session, "40P01")

    result = run_job(
        engine,
        Settings(),
        job_with_service(get_job("presence-cleanup"), always_deadlocks),
        now=NOW,
        dry_run=False,
    )
    assert (result.outcome, len(attempts)) == ("failed", 2)
    assert recorded_runs(engine) == [("failed", None, result.error)]
    assert "deadlock detected (simulated)" in (result.error or "")
    assert online_flags(engine) == [True]


def test_a_real_deadlock_with_the_app_is_retried(postgresql_only: None, engine: Engine) -> None:
    """The app locks user 2 then user 1 while the run holds user 1 and wants user 2;
    the app's session waits 10 s before it checks for deadlocks, so the run's backend
    (1 s, the default) is the one that gives up."""
    first, second = add_stale_user(engine), add_stale_user(engine)
    app_has_second, run_has_first = threading.Event(), threading.Event()
    attempts: list[int] = []

    def app() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SET deadlock_timeout = '10s'"))
            conn.execute(
                sa.text("UPDATE user_status SET updated_at = now() WHERE user_id = :u"),
                {"u": second},
            )
            app_has_second.set()
            run_has_first.wait(10)
            conn.execute(
                sa.text("UPDATE user_status SET updated_at = now() WHERE user_id = :u"),
                {"u": first},
            )
            conn.commit()

    def crosses_the_app(run):  # type: ignore[no-untyped-def]
        session = run.session
        attempts.append(1)
        if len(attempts) == 1:
            app_has_second.wait(10)
            session.execute(
                sa.text("UPDATE user_status SET updated_at = now() WHERE user_id = :u"),
                {"u": first},
            )
            run_has_first.set()
            time.sleep(0.3)  # the app now waits for user 1
            session.execute(
                sa.text("UPDATE user_status SET updated_at = now() WHERE user_id = :u"),
                {"u": second},
            )
        return presence.cleanup(run)

    thread = threading.Thread(target=app)
    thread.start()
    result = run_job(
        engine,
        Settings(),
        job_with_service(get_job("presence-cleanup"), crosses_the_app),
        now=NOW,
        dry_run=False,
    )
    thread.join()
    assert (result.outcome, len(attempts)) == ("ok", 2)
    assert online_flags(engine) == [False, False]
