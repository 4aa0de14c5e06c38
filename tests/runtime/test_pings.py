"""Monitoring pings (SPEC §9), against a small HTTP server on 127.0.0.1: start and
success, fail, the exit status, only a log event for a run that is skipped."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.jobs import presence
from saathii_ops.runtime import pings as monitoring
from saathii_ops.runtime.registry import get_job
from saathii_ops.runtime.runner import run_job
from saathii_ops.settings import Settings
from tests.factories import add_pause, job_with_service
from tests.support.monitor import Monitor
from tests.support.runs import NOW, add_stale_user, lock_held_elsewhere, partly_failing_service


def test_a_run_pings_start_and_success_with_run_id_duration_and_counts(
    engine: Engine, monitor: Monitor
) -> None:
    add_stale_user(engine)
    settings = Settings(ping_url=monitor.url)
    result = run_job(engine, settings, get_job("presence-cleanup"), now=NOW, dry_run=False)
    assert result.outcome == "ok"
    paths = [path for path, _ in monitor.requests]
    assert len(paths) == 2
    rid = paths[0].split("?rid=")[1]
    assert paths == [
        f"/ping/presence-cleanup/start?rid={rid}",
        f"/ping/presence-cleanup?rid={rid}",
    ]
    body = monitor.requests[1][1]
    assert body["run_id"] == rid and body["outcome"] == "ok"
    assert body["counts"] == {
        "marked_offline": 1,
        "cleared_wait_time": 0,
        "cleared_no_call": 0,
        "online_after": 0,
        "held_by_another_session": 0,
    }
    assert isinstance(body["duration_seconds"], float)


def test_a_failed_run_pings_fail(
    engine: Engine, monitor: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(presence, "inactive_online", broken)
    settings = Settings(ping_urls={"presence-cleanup": monitor.url})
    result = run_job(engine, settings, get_job("presence-cleanup"), now=NOW, dry_run=False)
    assert result.outcome == "failed"
    # each ping is its own thread: they may arrive in either order
    pings = {path.split("?")[0]: body for path, body in monitor.requests}
    assert len(monitor.requests) == 2
    assert set(pings) == {"/ping/start", "/ping/fail"}
    assert pings["/ping/fail"]["error"] == "RuntimeError: boom"


def test_a_dry_run_sends_no_ping(engine: Engine, monitor: Monitor) -> None:
    run_job(
        engine,
        Settings(ping_url=monitor.url),
        get_job("presence-cleanup"),
        now=NOW,
        dry_run=True,
    )
    assert monitor.requests == []


def test_a_monitor_that_is_down_or_slow_never_fails_or_holds_the_job(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job waits for its pings on a clock of its own: each wait is bounded, and all of
    them together take at most PING_TIMEOUT, however long the monitor takes to answer."""
    add_stale_user(engine)
    clock = FakeClock()

    class BoundedThread(threading.Thread):
        def join(self, timeout: float | None = None) -> None:
            assert timeout is not None, "an unbounded wait for a monitor"
            clock.now += timeout  # as if the monitor did not answer within it

    monkeypatch.setattr(monitoring, "time", clock)
    monkeypatch.setattr(monitoring, "threading", SimpleNamespace(Thread=BoundedThread))
    slow = Monitor(delay=5)
    try:
        for url in ("http://127.0.0.1:1/nothing-listens", slow.url):
            clock.now = 0.0
            result = run_job(
                engine,
                Settings(ping_url=url),
                get_job("presence-cleanup"),
                now=NOW,
                dry_run=False,
            )
            assert result.outcome == "ok"
            assert 0 < clock.now <= monitoring.PING_TIMEOUT
    finally:
        slow.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def test_a_paused_run_sends_no_start_only_a_log_event(engine: Engine, monitor: Monitor) -> None:
    with transaction(engine) as s:
        add_pause(s, "presence-cleanup", NOW)
        s.commit()
    settings = Settings(ping_url=monitor.url)
    result = run_job(engine, settings, get_job("presence-cleanup"), now=NOW, dry_run=False)
    assert (result.outcome, result.reason) == ("skipped", "paused")
    assert monitor.paths() == ["/ping/presence-cleanup/log"]


def test_a_run_that_finds_the_lock_taken_sends_no_start(engine: Engine, monitor: Monitor) -> None:
    job = get_job("presence-cleanup")
    with lock_held_elsewhere(engine, job.name):
        result = run_job(engine, Settings(ping_url=monitor.url), job, now=NOW, dry_run=False)
    assert (result.outcome, result.reason) == ("skipped", "locked")
    assert monitor.paths() == ["/ping/presence-cleanup/log"]


def test_a_run_that_exits_1_pings_its_exit_status_not_success(
    engine: Engine, monitor: Monitor
) -> None:
    result = run_job(
        engine,
        Settings(ping_url=monitor.url),
        job_with_service(get_job("presence-cleanup"), partly_failing_service),
        now=NOW,
        dry_run=False,
    )
    assert result.exit_code == 1
    # each ping is its own thread: they may arrive in either order
    assert sorted(monitor.paths()) == [
        "/ping/presence-cleanup/1",
        "/ping/presence-cleanup/start",
    ]
    assert [b["exit_code"] for p, b in monitor.requests if p.split("?")[0].endswith("/1")] == [1]
