"""A run's deadline (run_deadline_seconds): a run that takes longer, in however many quick
statements, stops with one line and nothing applied; a deadline too short is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.jobs import presence
from saathii_ops.runtime import runner
from saathii_ops.runtime.registry import get_job
from saathii_ops.runtime.runner import run_job
from saathii_ops.settings import Settings
from tests.conftest import Cli
from tests.factories import add_user, job_with_service
from tests.support.monitor import Monitor
from tests.support.runs import (
    NOW,
    add_stale_user,
    online_flags,
    recorded_runs,
    sleep_in_the_run,
)


def test_a_run_stops_at_its_deadline_with_nothing_applied(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, monitor: Monitor
) -> None:
    """Statements each well under the statement timeout, but the run as a whole too long."""
    add_stale_user(engine)
    monkeypatch.setattr(runner, "DEADLINE_RESERVE_SECONDS", 8.5)  # the work's deadline: 1.5 s

    def endless(run):  # type: ignore[no-untyped-def]
        session = run.session
        report = presence.cleanup(run)
        for _ in range(100):
            sleep_in_the_run(session, 0.5)
        return report

    started = time.monotonic()
    result = run_job(
        engine,
        Settings(run_deadline_seconds=10, ping_url=monitor.url),
        job_with_service(get_job("presence-cleanup"), endless),
        now=NOW,
        dry_run=False,
    )
    assert time.monotonic() - started < 10  # within the deadline; its service takes 50 s
    assert (result.outcome, result.exit_code) == ("failed", 1)
    reason = "stopped at its deadline of 10 s (run_deadline_seconds): rolled back"
    assert result.error == reason
    assert recorded_runs(engine) == [("failed", None, reason)]
    assert online_flags(engine) == [True]
    assert monitor.paths()[-1] == "/ping/presence-cleanup/fail"


def test_a_badge_backfill_longer_than_its_deadline_ends_with_one_line_and_nothing_applied(
    cli: Cli, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A year's backfill (the longest one run may do) that takes longer than the run's
    deadline: every day's statements are quick, the whole is not."""
    from saathii_ops.db.tables import listener_badges
    from saathii_ops.jobs import badges

    with transaction(engine) as s:
        for _ in range(3):
            add_user(s, role="listener")
        s.commit()
    monkeypatch.setattr(runner, "DEADLINE_RESERVE_SECONDS", 8.0)  # the work's deadline: 2 s
    plan = badges.plan

    def slow_day(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.05)  # once a day: 366 days, 18 s
        return plan(*args, **kwargs)

    monkeypatch.setattr(badges, "plan", slow_day)
    config = tmp_path / "ops.toml"
    config.write_text("run_deadline_seconds = 10\n")
    started = time.monotonic()
    result = cli(
        "--config",
        str(config),
        "--now",
        NOW.isoformat(),
        "badges",
        "assign",
        "--from",
        "2025-11-29",
        "--to",
        "2026-11-29",
    )
    assert time.monotonic() - started < 10  # within the deadline; the backfill takes 18 s
    assert result.exit_code == 1, (result.stdout, result.stderr)
    (line,) = result.stdout.splitlines()
    assert line.startswith("job=badges-assign outcome=failed exit_code=1 ")
    assert ' error="stopped at its deadline of 10 s (run_deadline_seconds): rolled back" ' in line
    with transaction(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(listener_badges)) == 0
    assert recorded_runs(engine)[-1][0] == "failed"


def test_the_run_deadline_is_validated(tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text("run_deadline_seconds = 5\n")
    done = subprocess.run(
        [sys.executable, "-m", "saathii_ops", "--config", str(config), "coins", "deduct"],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path)},
    )
    assert done.returncode == 2
    assert "run_deadline_seconds" in done.stderr
