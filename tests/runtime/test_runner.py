"""The job runner (SPEC §9): audit rows, pause, the lock, rollback of a failed run."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import ops_job_runs
from saathii_ops.jobs import presence
from saathii_ops.runtime.registry import get_job
from saathii_ops.runtime.runner import run_job
from saathii_ops.settings import Settings
from tests.conftest import Cli
from tests.factories import add_pause, job_with_service
from tests.support.runs import (
    NOW,
    lock_held_elsewhere,
    online_flags,
    partly_failing_service,
    recorded_runs,
    sleep_in_the_run,
)


def test_a_paused_job_is_recorded_as_skipped_and_changes_nothing(
    cli: Cli, engine: Engine, stale_user: int
) -> None:
    with transaction(engine) as s:
        add_pause(s, "presence-cleanup", NOW)
        s.commit()
    result = cli("--now", NOW.isoformat(), "presence", "cleanup")
    assert result.exit_code == 0
    assert result.stdout.startswith("job=presence-cleanup outcome=skipped exit_code=0 ")
    assert " reason=paused paused_by=test " in result.stdout
    assert recorded_runs(engine) == [("skipped", "paused", None)]
    assert online_flags(engine) == [True]


def test_a_run_that_finds_the_lock_taken_is_skipped(engine: Engine, stale_user: int) -> None:
    job = get_job("presence-cleanup")
    with lock_held_elsewhere(engine, job.name):
        result = run_job(engine, Settings(), job, now=NOW, dry_run=False)
    assert (result.outcome, result.reason, result.exit_code) == ("skipped", "locked", 0)
    assert recorded_runs(engine) == [("skipped", "locked", None)]
    assert online_flags(engine) == [True]

    after = run_job(engine, Settings(), job, now=NOW, dry_run=False)
    assert after.outcome == "ok"
    assert online_flags(engine) == [False]


@pytest.mark.parametrize(("holder", "outcome"), [("elsewhere", "ok"), ("here", "skipped")])
def test_logs_prune_is_locked_per_host(engine: Engine, tmp_path, holder: str, outcome: str) -> None:
    """Each host prunes its own log files: another host's run must not make it skip."""
    import socket

    job = get_job("logs-prune")
    host = "other-host" if holder == "elsewhere" else socket.gethostname()
    with lock_held_elsewhere(engine, job.lock_name(host)):
        settings = Settings(log_dir=tmp_path)
        result = run_job(engine, settings, job, now=NOW, dry_run=False)
    assert result.outcome == outcome


def test_a_failing_job_is_rolled_back_whole_and_recorded(
    cli: Cli, engine: Engine, stale_user: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail_after_the_updates(*args: object, **kwargs: object) -> presence.PresenceReport:
        raise RuntimeError("disk on fire")

    # the user is marked offline, then the service fails: nothing may stay applied
    monkeypatch.setattr(presence, "PresenceReport", fail_after_the_updates)
    result = cli("--now", NOW.isoformat(), "presence", "cleanup")
    assert result.exit_code == 1
    assert result.stdout.startswith("job=presence-cleanup outcome=failed exit_code=1 ")
    assert ' error="RuntimeError: disk on fire" ' in result.stdout
    assert online_flags(engine) == [True]
    assert recorded_runs(engine) == [("failed", None, "RuntimeError: disk on fire")]


def test_a_dry_run_is_read_only_even_if_the_service_tries_to_write(engine: Engine) -> None:
    def writes_anyway(run):  # type: ignore[no-untyped-def]
        return presence.cleanup(dataclasses.replace(run, apply=True))

    with pytest.raises(Exception, match=r"(?i)read-only|readonly"):
        run_job(
            engine,
            Settings(),
            job_with_service(get_job("presence-cleanup"), writes_anyway),
            now=NOW,
            dry_run=True,
        )
    assert recorded_runs(engine) == []


def test_now_defaults_to_the_database_clock(engine: Engine) -> None:
    before = datetime.now(UTC)
    result = run_job(engine, Settings(), get_job("presence-cleanup"), now=None, dry_run=True)
    assert before - timedelta(seconds=5) <= result.now <= datetime.now(UTC) + timedelta(seconds=5)
    assert result.now.tzinfo is not None


def test_a_run_with_failed_rows_commits_the_good_ones_and_says_so(engine: Engine) -> None:
    result = run_job(
        engine,
        Settings(),
        job_with_service(get_job("presence-cleanup"), partly_failing_service),
        now=NOW,
        dry_run=False,
    )
    assert (result.outcome, result.exit_code) == ("ok", 1)
    assert recorded_runs(engine) == [("ok", "some rows failed", None)]


def test_the_recorded_duration_is_the_measured_one(engine: Engine) -> None:
    """PostgreSQL's now() is the transaction's start: a run's start and end must not be."""

    def slow_cleanup(run):  # type: ignore[no-untyped-def]
        session = run.session
        sleep_in_the_run(session, 1.5)
        return presence.cleanup(run)

    started = time.monotonic()
    result = run_job(
        engine,
        Settings(),
        job_with_service(get_job("presence-cleanup"), slow_cleanup),
        now=NOW,
        dry_run=False,
    )
    measured = time.monotonic() - started
    with transaction(engine) as s:
        run = s.execute(sa.select(ops_job_runs.c.started_at, ops_job_runs.c.finished_at)).one()
    recorded = (run.finished_at - run.started_at).total_seconds()
    assert result.outcome == "ok"
    assert 1.5 <= recorded <= measured + 0.05
    assert recorded == pytest.approx(result.duration_seconds, abs=0.3)
