"""Runs tell the truth (issue 10): true durations, bounded bookkeeping, the run's deadline,
work after the commit that never fails the run, and the pings of each outcome."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from saathii_ops.db.engine import is_sqlite, transaction
from saathii_ops.db.models import JobControl, JobRun, UserRole, UserStatus
from saathii_ops.errors import DatabaseUnavailable, Interrupted
from saathii_ops.jobs import call_cache, presence
from saathii_ops.reports import Report
from saathii_ops.runtime import runner
from saathii_ops.runtime.registry import Job, get_job
from saathii_ops.runtime.runner import job_lock, run_job
from saathii_ops.settings import Settings
from tests.conftest import REDIS_URL, Cli
from tests.factories import T0, add_call, add_user, job_with_service
from tests.runtime.test_pings import Monitor
from tests.runtime.test_runner import partly_failing_service

NOW = T0 + timedelta(minutes=10)


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    m = Monitor()
    yield m
    m.close()


def _runs(engine: Engine) -> list[tuple[str, str | None, str | None]]:
    with transaction(engine) as s:
        rows = s.execute(
            sa.select(JobRun.outcome, JobRun.reason, JobRun.error).order_by(JobRun.run_id)
        ).all()
    return [tuple(r) for r in rows]


def _stale_user(engine: Engine) -> int:
    with transaction(engine) as s:
        user = add_user(s, online=True, last_seen=T0)
        s.commit()
    return user


def _online(engine: Engine) -> list[bool | None]:
    with transaction(engine) as s:
        return list(s.scalars(sa.select(UserStatus.is_online).order_by(UserStatus.user_id)))


def _sleep(session: sa.orm.Session, seconds: float) -> None:
    """Time spent inside the run's transaction, on the database server where there is one."""
    if is_sqlite(session):
        session.execute(sa.text("SELECT 1"))
        time.sleep(seconds)
    else:
        session.execute(sa.text("SELECT pg_sleep(:s)"), {"s": seconds})


def _ping_paths(monitor: Monitor) -> list[str]:
    return [path.split("?")[0] for path, _ in monitor.requests]


# --- item 1: durations ------------------------------------------------------------------


def test_the_recorded_duration_is_the_measured_one(engine: Engine) -> None:
    """PostgreSQL's now() is the transaction's start: a run's start and end must not be."""

    def slow_cleanup(run):  # type: ignore[no-untyped-def]
        session = run.session
        _sleep(session, 1.5)
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
        run = s.execute(sa.select(JobRun.started_at, JobRun.finished_at)).one()
    recorded = (run.finished_at - run.started_at).total_seconds()
    assert result.outcome == "ok"
    assert 1.5 <= recorded <= measured + 0.05
    assert recorded == pytest.approx(result.duration_seconds, abs=0.3)


# --- item 3: work after the commit --------------------------------------------------------


def _a_charged_call(engine: Engine) -> None:
    with transaction(engine) as s:
        listener = add_user(s, role="listener", balance=0)
        add_call(s, add_user(s, balance=1000), listener, start=T0 - timedelta(seconds=150))
        s.commit()


def test_a_sync_marker_that_is_not_a_time_is_repaired_not_raised(
    engine: Engine, cache: redis.Redis, monitor: Monitor
) -> None:
    _a_charged_call(engine)
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
    assert _ping_paths(monitor)[-1] == "/ping/coins-deduct"  # success, not /fail


def test_a_database_error_in_the_missed_sync_check_is_a_warning(
    engine: Engine, cache: redis.Redis, monitor: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    _a_charged_call(engine)

    def database_gone(*args: object) -> None:
        raise OperationalError("SELECT min(run_now) …", {}, Exception("server closed"))

    monkeypatch.setattr(call_cache, "_missed_since", database_gone)
    settings = Settings(redis_url=REDIS_URL, ping_url=monitor.url)
    result = run_job(engine, settings, get_job("coins-deduct"), now=T0, dry_run=False)
    assert (result.outcome, result.exit_code) == ("ok", 0)
    assert isinstance(result.after_commit, call_cache.CacheSync)
    assert "could not check for a missed sync" in (result.after_commit.error or "")
    assert cache.get(call_cache.MARKER) is None  # left behind: the next run repairs
    assert _runs(engine) == [("ok", None, None)]
    assert _ping_paths(monitor) == ["/ping/coins-deduct/start", "/ping/coins-deduct"]


def test_anything_raised_after_the_commit_is_a_warning_and_the_run_stands(
    cli: Cli, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stale_user(engine)

    def broken(*args: object) -> Report:
        raise ValueError("Invalid isoformat string: 'garbage'")

    monkeypatch.setattr(Job, "after_commit_step", lambda job, settings: broken)
    result = cli("--now", NOW.isoformat(), "presence", "cleanup")
    assert result.exit_code == 0, result.stderr
    assert ' warning="after the commit: ValueError: Invalid isoformat string' in result.stdout
    assert "unexpected" not in result.stderr
    assert _runs(engine) == [("ok", None, None)]
    assert _online(engine) == [False]


# --- item 5: pings -------------------------------------------------------------------------


def test_a_paused_run_sends_no_start_only_a_log_event(engine: Engine, monitor: Monitor) -> None:
    with transaction(engine) as s:
        s.add(JobControl(job="presence-cleanup", paused=True, changed_at=NOW, changed_by="test"))
        s.commit()
    settings = Settings(ping_url=monitor.url)
    result = run_job(engine, settings, get_job("presence-cleanup"), now=NOW, dry_run=False)
    assert (result.outcome, result.reason) == ("skipped", "paused")
    assert _ping_paths(monitor) == ["/ping/presence-cleanup/log"]


def test_a_run_that_finds_the_lock_taken_sends_no_start(engine: Engine, monitor: Monitor) -> None:
    job = get_job("presence-cleanup")
    holding, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with transaction(engine) as s, job_lock(s, job.name) as acquired:
            assert acquired
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert holding.wait(10)
        result = run_job(engine, Settings(ping_url=monitor.url), job, now=NOW, dry_run=False)
    finally:
        release.set()
        holder.join()
    assert (result.outcome, result.reason) == ("skipped", "locked")
    assert _ping_paths(monitor) == ["/ping/presence-cleanup/log"]


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
    assert sorted(_ping_paths(monitor)) == [
        "/ping/presence-cleanup/1",
        "/ping/presence-cleanup/start",
    ]
    assert [b["exit_code"] for p, b in monitor.requests if p.split("?")[0].endswith("/1")] == [1]


# --- item 10: every statement bounded, and the whole run ------------------------------------


def test_a_run_stops_at_its_deadline_with_nothing_applied(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, monitor: Monitor
) -> None:
    """Statements each well under the statement timeout, but the run as a whole too long."""
    _stale_user(engine)
    monkeypatch.setattr(runner, "DEADLINE_RESERVE_SECONDS", 8.5)  # the work's deadline: 1.5 s

    def endless(run):  # type: ignore[no-untyped-def]
        session = run.session
        report = presence.cleanup(run)
        for _ in range(100):
            _sleep(session, 0.5)
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
    assert _runs(engine) == [("failed", None, reason)]
    assert _online(engine) == [True]
    assert _ping_paths(monitor)[-1] == "/ping/presence-cleanup/fail"


def test_a_badge_backfill_longer_than_its_deadline_ends_with_one_line_and_nothing_applied(
    cli: Cli, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A year's backfill (the longest one run may do) that takes longer than the run's
    deadline: every day's statements are quick, the whole is not."""
    from saathii_ops.db.models import ListenerBadge
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
        assert s.scalar(sa.select(sa.func.count()).select_from(ListenerBadge)) == 0
    assert _runs(engine)[-1][0] == "failed"


# PostgreSQL: a table or a row locked by another session, as in issue 10 item 10


@pytest.fixture
def pg_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("locks held by another session: PostgreSQL")


def _ops(db_url: str, tmp_path: Path, *args: str, **settings: int) -> list[str]:
    config = tmp_path / "ops.toml"
    config.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
    return [
        sys.executable, "-m", "saathii_ops", "--database-url", db_url, "--config", str(config),
        "--now", T0.isoformat(), *args,
    ]  # fmt: skip


def _held(engine: Engine, sql: str) -> Iterator[None]:
    with engine.connect() as conn:
        conn.exec_driver_sql(sql)
        yield
        conn.rollback()


def test_a_failure_record_cannot_hang_on_a_locked_audit_table(
    pg_only: None, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    """`LOCK TABLE ops_job_runs IN EXCLUSIVE MODE` in psql, then `coins deduct` with
    statement_timeout_seconds = 3: the run's own record times out, its failure record
    too, within seconds; before, it waited for ever."""
    _a_charged_call(engine)
    command = _ops(db_url, tmp_path, "coins", "deduct", statement_timeout_seconds=3)
    for _ in _held(engine, "LOCK TABLE ops_job_runs IN EXCLUSIVE MODE"):
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - started
    assert elapsed < 20, elapsed  # it waited for ever
    assert done.returncode == 1, done.stderr
    assert "canceling statement due to statement timeout" in done.stdout
    assert "could not record the failed run of coins-deduct" in done.stderr
    with transaction(engine) as s:
        assert s.scalar(sa.select(sa.func.sum(sa.text("coins_spent"))).select_from(
            sa.table("user_calls", sa.column("coins_spent")))) == 0  # fmt: skip


def test_the_schema_check_is_bounded_too(
    pg_only: None, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    command = _ops(db_url, tmp_path, "coins", "deduct", statement_timeout_seconds=2)
    for _ in _held(engine, "LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"):
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        elapsed = time.monotonic() - started
    assert elapsed < 20, elapsed  # it waited for ever
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "did not give its schema revision within 2 s" in lines[0]


# --- item 14 --------------------------------------------------------------------------------


def test_a_dry_run_of_a_paused_job_says_a_real_run_would_be_skipped(
    cli: Cli, engine: Engine
) -> None:
    with transaction(engine) as s:
        s.add(JobControl(job="presence-cleanup", paused=True, changed_at=NOW, changed_by="test"))
        s.commit()
    result = cli("--now", NOW.isoformat(), "presence", "cleanup", "--dry-run")
    assert result.exit_code == 0
    assert ' reason="paused: a real run would be skipped" ' in result.stdout


def test_a_copied_settings_has_the_copys_business_timezone() -> None:
    settings = Settings()
    assert settings.business_tz.key == "Asia/Kolkata"
    copy = settings.model_copy(update={"timezone": "UTC"})
    assert copy.business_tz.key == "UTC"


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


# --- item 11: interrupted runs leave a trace ------------------------------------------------


def _blocking(seconds: float, pid: list[int] | None = None):  # type: ignore[no-untyped-def]
    """A service that changes rows, then spends `seconds` in the database."""

    def service(run):  # type: ignore[no-untyped-def]
        session = run.session
        report = presence.cleanup(run)
        if pid is not None:
            pid.append(session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
        for _ in range(int(seconds / 0.5)):
            _sleep(session, 0.5)
        return report

    return service


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_rolls_the_run_back_and_records_it_failed(
    engine: Engine, signum: int, monitor: Monitor
) -> None:
    _stale_user(engine)
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
    assert _runs(engine) == [("failed", None, f"interrupted by {name}")]
    assert _online(engine) == [True]
    assert _ping_paths(monitor)[-1] == "/ping/presence-cleanup/fail"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_terminated_backend_is_exit_3_nothing_applied_and_recorded(
    pg_only: None, engine: Engine
) -> None:
    _stale_user(engine)
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
    [(outcome, reason, error)] = _runs(engine)
    assert (outcome, reason) == ("failed", None)
    assert error is not None and error.startswith("lost the database connection: ")
    assert _online(engine) == [True]
    assert (
        run_job(engine, Settings(), get_job("presence-cleanup"), now=NOW, dry_run=False).outcome
        == "ok"
    )
    assert _online(engine) == [False]


# --- item 12: a deadlock or serialization failure is retried once ---------------------------


def _raise_sqlstate(session: sa.orm.Session, code: str) -> None:
    """The server raising the error a deadlock (or a serialization failure) raises."""
    session.execute(
        sa.text(
            f"DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '{code}', "
            "MESSAGE = 'deadlock detected (simulated)'; END $$"
        )
    )


@pytest.mark.parametrize("code", ["40P01", "40001"])
def test_a_deadlock_is_retried_once(pg_only: None, engine: Engine, code: str) -> None:
    _stale_user(engine)
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
    assert _runs(engine) == [("ok", None, None)]
    assert _online(engine) == [False]


def test_a_second_deadlock_fails_the_run(pg_only: None, engine: Engine) -> None:
    _stale_user(engine)
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
    assert _runs(engine) == [("failed", None, result.error)]
    assert "deadlock detected (simulated)" in (result.error or "")
    assert _online(engine) == [True]


def test_a_real_deadlock_with_the_app_is_retried(pg_only: None, engine: Engine) -> None:
    """The app locks user 2 then user 1 while the run holds user 1 and wants user 2;
    the app's session waits 10 s before it checks for deadlocks, so the run's backend
    (1 s, the default) is the one that gives up."""
    first, second = _stale_user(engine), _stale_user(engine)
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
    assert _online(engine) == [False, False]


# --- item 14: the smaller ones -------------------------------------------------------------


def test_a_user_with_no_name_pauses_a_job_as_its_uid(
    cli: Cli, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container under an arbitrary UID: no passwd entry, no LOGNAME."""
    import pwd
    import socket

    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)

    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    result = cli("--now", NOW.isoformat(), "jobs", "pause", "presence-cleanup")
    assert result.exit_code == 0, result.stderr
    with transaction(engine) as s:
        changed_by = s.scalar(sa.select(JobControl.changed_by))
    assert changed_by == f"{os.getuid()}@{socket.gethostname()}"


def test_the_app_topping_up_during_a_run_is_no_conservation_alarm(
    pg_only: None, db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app buys coins for the caller and the listener while the run charges and
    settles them: the run checks what it wrote, the app's coins land after it. The app's
    top-up writes back the balance it read before our debit (issue 19, fact 13): the caller's
    debit is erased, which is `wallets audit`'s to name, not an alarm of the run's."""
    from decimal import Decimal

    from saathii_ops.billing import charging
    from tests.billing_checks import wait_for_a_lock_wait, wallet
    from tests.simulated_app import SimulatedApp

    with transaction(engine) as s:
        listener = add_user(s, role="listener", balance=0)
        s.execute(sa.insert(UserRole).values(user_id=listener, role="customer"))  # buys coins
        caller = add_user(s, balance=25)
        # owes 3 minutes (30 coins) at T0, can pay 2: charged 20 and ended, 2 minutes paid
        add_call(s, caller, listener, start=T0 - timedelta(seconds=150))
        s.commit()
    simulated = SimulatedApp(db_url)
    charge = charging.charge_chunk
    buyers: list[threading.Thread] = []

    def charge_while_the_app_buys(*args, **kwargs):  # type: ignore[no-untyped-def]
        for user in (caller, listener):
            buyer = threading.Thread(target=simulated.purchase, args=(user, 100, Decimal("9")))
            buyer.start()
            wait_for_a_lock_wait(engine, buyer)
            buyers.append(buyer)
        return charge(*args, **kwargs)

    monkeypatch.setattr(charging, "charge_chunk", charge_while_the_app_buys)
    try:
        result = run_job(engine, Settings(), get_job("coins-deduct"), now=T0, dry_run=False)
        for buyer in buyers:
            buyer.join()
    finally:
        simulated.close()
    assert (result.outcome, result.error) == ("ok", None)
    assert wallet(engine, caller) == (25 + 100, Decimal("0.00"))  # read 25: our 20 erased
    assert wallet(engine, listener) == (100, Decimal("2.00"))  # 2 paid minutes, basic audio
