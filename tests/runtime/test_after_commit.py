"""Work after the run's commit (the call cache's sync) never fails the run: what goes
wrong there is a warning, the run stands and pings success."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from saathii_ops.jobs import call_cache
from saathii_ops.reports import Report
from saathii_ops.runtime.registry import Job, get_job
from saathii_ops.runtime.runner import run_job
from saathii_ops.settings import Settings
from tests.conftest import REDIS_URL, Cli
from tests.factories import T0
from tests.support.monitor import Monitor
from tests.support.runs import (
    NOW,
    add_a_call_to_charge,
    add_stale_user,
    online_flags,
    recorded_runs,
)


def test_a_sync_marker_that_is_not_a_time_is_repaired_not_raised(
    engine: Engine, cache: redis.Redis, monitor: Monitor
) -> None:
    add_a_call_to_charge(engine)
    settings = Settings(redis_url=REDIS_URL, ping_url=monitor.url)
    job = get_job("coins-deduct")
    assert run_job(engine, settings, job, now=T0, dry_run=False).exit_code == 0
    cache.set(call_cache.MARKER, "yesterday-ish")

    result = run_job(engine, settings, job, now=T0 + timedelta(minutes=1), dry_run=False)
    assert (result.outcome, result.exit_code) == ("ok", 0)
    assert isinstance(result.after_commit, call_cache.CacheSync)
    assert result.after_commit.repaired
    assert "not a time" in (result.after_commit.error or "")
    assert cache.get(call_cache.MARKER) == (T0 + timedelta(minutes=1)).isoformat()
    assert monitor.paths()[-1] == "/ping/coins-deduct"  # success, not /fail


def test_a_database_error_in_the_missed_sync_check_is_a_warning(
    engine: Engine, cache: redis.Redis, monitor: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_a_call_to_charge(engine)

    def database_gone(*args: object) -> None:
        raise OperationalError("SELECT min(run_now) …", {}, Exception("server closed"))

    monkeypatch.setattr(call_cache, "_missed_since", database_gone)
    settings = Settings(redis_url=REDIS_URL, ping_url=monitor.url)
    result = run_job(engine, settings, get_job("coins-deduct"), now=T0, dry_run=False)
    assert (result.outcome, result.exit_code) == ("ok", 0)
    assert isinstance(result.after_commit, call_cache.CacheSync)
    assert "could not check for a missed sync" in (result.after_commit.error or "")
    assert cache.get(call_cache.MARKER) is None  # left behind: the next run repairs
    assert recorded_runs(engine) == [("ok", None, None)]
    assert monitor.paths() == ["/ping/coins-deduct/start", "/ping/coins-deduct"]


def test_anything_raised_after_the_commit_is_a_warning_and_the_run_stands(
    cli: Cli, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_stale_user(engine)

    def broken(*args: object) -> Report:
        raise ValueError("Invalid isoformat string: 'garbage'")

    monkeypatch.setattr(Job, "after_commit_step", lambda job, settings: broken)
    result = cli("--now", NOW.isoformat(), "presence", "cleanup")
    assert result.exit_code == 0, result.stderr
    assert ' warning="after the commit: ValueError: Invalid isoformat string' in result.stdout
    assert "unexpected" not in result.stderr
    assert recorded_runs(engine) == [("ok", None, None)]
    assert online_flags(engine) == [False]
