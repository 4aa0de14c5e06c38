"""Interrupted runs leave a trace: a signal or a terminated backend rolls the run back,
records it failed and says so in one line."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.errors import DatabaseUnavailable, Interrupted
from saathii_ops.jobs import presence
from saathii_ops.runtime.registry import get_job
from saathii_ops.runtime.runner import run_job
from saathii_ops.settings import Settings
from tests.factories import job_with_service
from tests.support.monitor import Monitor
from tests.support.runs import (
    NOW,
    add_stale_user,
    online_flags,
    recorded_runs,
    sleep_in_the_run,
)


def _blocking(seconds: float, pid: list[int] | None = None):  # type: ignore[no-untyped-def]
    """A service that changes rows, then spends `seconds` in the database."""

    def service(run):  # type: ignore[no-untyped-def]
        session = run.session
        report = presence.cleanup(run)
        if pid is not None:
            pid.append(session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
        for _ in range(int(seconds / 0.5)):
            sleep_in_the_run(session, 0.5)
        return report

    return service


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_rolls_the_run_back_and_records_it_failed(
    engine: Engine, signum: int, monitor: Monitor
) -> None:
    add_stale_user(engine)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signum))
    timer.start()
    started = time.monotonic()
    with pytest.raises(Interrupted) as raised:
        run_job(
            engine,
            Settings(ping_url=monitor.url),
            job_with_service(get_job("presence-cleanup"), _blocking(30)),
            now=NOW,
            dry_run=False,
        )
    timer.join()
    assert time.monotonic() - started < 20  # its service alone takes 30 s
    name = signal.Signals(signum).name
    assert raised.value.exit_code == 128 + signum
    assert str(raised.value) == (
        f"presence-cleanup interrupted by {name}, nothing applied; recorded as failed"
    )
    assert recorded_runs(engine) == [("failed", None, f"interrupted by {name}")]
    assert online_flags(engine) == [True]
    assert monitor.paths()[-1] == "/ping/presence-cleanup/fail"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_terminated_backend_is_exit_3_nothing_applied_and_recorded(
    postgresql_only: None, engine: Engine
) -> None:
    add_stale_user(engine)
    pid: list[int] = []

    def terminate() -> None:
        for _ in range(100):
            if pid:
                break
            time.sleep(0.05)
        time.sleep(0.3)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid[0]})

    killer = threading.Thread(target=terminate)
    killer.start()
    with pytest.raises(DatabaseUnavailable) as raised:
        run_job(
            engine,
            Settings(),
            job_with_service(get_job("presence-cleanup"), _blocking(30, pid)),
            now=NOW,
            dry_run=False,
        )
    killer.join()
    message = str(raised.value)
    assert message.startswith("presence-cleanup lost the database connection mid-run (")
    assert message.endswith("the server rolled it back, nothing applied; recorded as failed")
    assert "\n" not in message
    [(outcome, reason, error)] = recorded_runs(engine)
    assert (outcome, reason) == ("failed", None)
    assert error is not None and error.startswith("lost the database connection: ")
    assert online_flags(engine) == [True]
    assert (
        run_job(engine, Settings(), get_job("presence-cleanup"), now=NOW, dry_run=False).outcome
        == "ok"
    )
    assert online_flags(engine) == [False]
