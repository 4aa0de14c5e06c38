"""`saathii-ops status` (SPEC §11): the jobs' health and the data's figures, for people,
--json and --format prometheus, with the exit codes of SPEC §9.

The base database (`_healthy`) at NOW = 06:10:30 UTC (11:40:30 in Asia/Kolkata),
cron in UTC, so now - grace = 06:08:30 and each job's latest due firing F is:
coins-deduct 06:08, calls-cleanup 06:00, presence-cleanup 06:05, badges-assign
00:01 IST = 18:31 UTC the day before, logs-prune 01:00.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from saathii_ops.billing import charge as billing
from saathii_ops.billing.report import INSUFFICIENT_BALANCE
from saathii_ops.db import schema
from saathii_ops.db.engine import make_engine, parse_url, transaction
from saathii_ops.db.tables import listener_badges, ops_job_runs, user_calls
from saathii_ops.demo import sample_data
from saathii_ops.jobs import call_cleanup
from saathii_ops.runtime.registry import JOBS
from saathii_ops.scheduling import block as cron_block
from saathii_ops.scheduling import targets
from saathii_ops.scheduling.schedule_target import ScheduleTarget
from saathii_ops.settings import Settings
from saathii_ops.status import collect as status_service
from saathii_ops.status.report import StatusReport
from tests.conftest import Cli
from tests.factories import add_badge, add_call, add_run, add_user, run_context

NOW = datetime(2026, 11, 29, 6, 10, 30, tzinfo=UTC)
TODAY = date(2026, 11, 29)  # in Asia/Kolkata
SETTINGS = Settings(server_timezone="UTC")
ANY_TARGET = ScheduleTarget(config=None, database=None)  # a block installed with no options


def at(hour: int, minute: int, second: int = 0, day: int = 29) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


# each job's last run in the healthy database: at or after its latest due firing
HEALTHY_RUNS = {
    "coins-deduct": at(6, 10),
    "calls-cleanup": at(6, 0, 1),
    "presence-cleanup": at(6, 5, 1),
    "badges-assign": at(18, 31, 2, day=28),
    "logs-prune": at(1, 0, 3),
    "wallets-audit": at(6, 0, 2),
}
DUE = {
    "coins-deduct": at(6, 8),
    "calls-cleanup": at(6, 0),
    "presence-cleanup": at(6, 5),
    "badges-assign": at(18, 31, day=28),
    "logs-prune": at(1, 0),
    "wallets-audit": at(6, 0),
}
NEXT = {
    "coins-deduct": at(6, 11),
    "calls-cleanup": at(6, 20),
    "presence-cleanup": at(6, 15),
    "badges-assign": at(18, 31),
    "logs-prune": at(1, 0, day=30),
    "wallets-audit": at(7, 0),
}
HEALTHY_DATA = {
    "online_users": 3,  # the caller, the listener on the call, the customer in debt
    "busy_users": 2,  # both parties of the call
    "offline_seen_users": 0,  # the offline listeners were last seen at 06:00
    "ongoing_calls": 1,
    "owing_calls": 1,  # its third minute started at 06:10:10
    "billing_behind_calls": 0,  # at 06:08:30 it owed nothing
    "unbillable_calls": 0,
    "cleanup_due_calls": 0,
    "listeners_without_badge": 1,  # the idle listener; the inactive one is not eligible
    "calls_settled_without_badge": 0,
    "presence_due_users": 0,  # all seen 20 s ago; both busy users are on the call
    "negative_balance_wallets": 1,
}


@dataclass
class Ids:
    caller: int
    listener: int
    call: int


def _healthy(engine: Engine) -> Ids:
    seen = NOW - timedelta(seconds=20)
    with transaction(engine) as s:
        caller = add_user(s, balance=1000, online=True, last_seen=seen, busy=True, wait_time=30)
        listener = add_user(s, role="listener", balance=0, online=True, last_seen=seen, busy=True)
        add_user(s, role="listener", online=False)
        add_user(s, role="listener", online=False, active=False)
        add_user(s, balance=-5, online=True, last_seen=seen)
        add_badge(s, listener, TODAY, "basic", "1.00", "6.00")
        # started 06:08:10: billed at 06:10:00 for its first two minutes (20 coins)
        call = add_call(s, caller, listener, start=at(6, 8, 10), coins_spent=20)
        for job, started in HEALTHY_RUNS.items():
            add_run(s, job, "ok", started)
        s.commit()
    return Ids(caller, listener, call)


@pytest.fixture
def server_in_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAATHII_SERVER_TIMEZONE", "UTC")


def _status(cli: Cli, *args: str, now: datetime = NOW) -> tuple[int, dict[str, Any]]:
    result = cli("--now", now.isoformat(), "status", "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def _collect(engine: Engine, now: datetime = NOW) -> StatusReport:
    return status_service.collect(engine, SETTINGS, now=now, crontab=None)


def _set_coins_spent(engine: Engine, call: int, coins: int) -> None:
    with transaction(engine) as s:
        s.execute(
            sa.update(user_calls).where(user_calls.c.call_id == call).values(coins_spent=coins)
        )
        s.commit()


# --- healthy ---------------------------------------------------------------------------


def test_a_healthy_database_is_exit_0_with_every_figure(
    cli: Cli, engine: Engine, db_url: str, backend: str, tmp_path: Path, server_in_utc: None
) -> None:
    _healthy(engine)
    crontab = tmp_path / "crontab"
    _install(crontab, tmp_path, cli)
    code, doc = _status(cli, "--crontab-file", str(crontab))
    assert code == 0
    version = doc["database"].pop("server_version")
    if backend == "sqlite":
        assert version == sqlite3.sqlite_version
    else:
        assert version.split(".")[0].isdigit()
    jobs = {job["job"]: job for job in doc.pop("jobs")}
    assert doc == {
        "now": NOW.isoformat(),
        "healthy": True,
        "problems": [],
        "database": {
            "url": parse_url(db_url).render_as_string(hide_password=True),
            "reachable": True,
            "error": None,
            "source": "--database-url",
            "read_only": None,
        },
        "schema": {"current": "0005", "head": "0005", "at_head": True},
        "crontab": str(crontab),
        "badge_date": "2026-11-29",
        "data": HEALTHY_DATA,
    }
    assert list(jobs) == [job.name for job in JOBS]
    for job in JOBS:
        started = HEALTHY_RUNS[job.name]
        assert jobs[job.name] == {
            "job": job.name,
            "command": job.command,
            "schedule": job.schedule,
            "timezone": "Asia/Kolkata" if job.business_time else "UTC",
            "scheduled": True,
            "paused": False,
            "paused_by": None,
            "paused_at": None,
            "paused_reason": None,
            "never_run": False,
            "last_outcome": "ok",
            "last_reason": None,
            "last_started_at": started.isoformat(),
            # status's jobs are job_control's JobState and more
            "last_finished_at": (started + timedelta(seconds=1)).isoformat(),
            "last_run_now": started.isoformat(),
            "last_duration_seconds": 1.0,
            "last_counts": None,
            "last_error": None,
            "last_failed_at": None,
            "last_failure_error": None,
            "due_at": DUE[job.name].isoformat(),
            "next_run_at": NEXT[job.name].isoformat(),
            "overdue": False,
            "last_run_failed": False,
            "last_exit_code": 0,
        }


def test_people_see_each_job_and_figure(cli: Cli, engine: Engine, server_in_utc: None) -> None:
    _healthy(engine)
    result = cli("--now", NOW.isoformat(), "status", "--crontab-file", "/nonexistent/crontab")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "status at 2026-11-29T06:10:30+00:00: healthy"
    assert "  schema: 0005 (at head)" in lines
    assert "  crontab: /nonexistent/crontab" in lines
    assert (
        "  job=coins-deduct  schedule=* * * * * (UTC)  scheduled=no  paused=no  "
        "last_run=ok at 2026-11-29 06:10:00 UTC in 1.0 s  counts=-  last_failure=-  "
        "next_run=2026-11-29 06:11 UTC  state=ok"
    ) in lines
    assert (
        "  job=badges-assign  schedule=1 0 * * * (Asia/Kolkata)  scheduled=no  paused=no  "
        "last_run=ok at 2026-11-28 18:31:02 UTC in 1.0 s  counts=-  last_failure=-  "
        "next_run=2026-11-29 18:31 UTC  state=ok"
    ) in lines
    assert "data (badge date 2026-11-29 in Asia/Kolkata)" in lines
    assert "  users marked online: 3" in lines
    assert "  active listeners without a badge for today (business date): 1" in lines
    assert "  wallets with a negative balance: 1" in lines
    assert "problems:" not in lines


def test_a_job_that_never_ran_is_reported_as_never_run_not_as_a_problem(
    cli: Cli, server_in_utc: None
) -> None:
    code, doc = _status(cli)
    assert code == 0
    assert doc["healthy"] is True and doc["problems"] == []
    for job in doc["jobs"]:
        assert (job["never_run"], job["overdue"], job["last_run_failed"]) == (True, False, False)
        assert job["last_started_at"] is None and job["last_outcome"] is None
    assert doc["data"] == dict.fromkeys(HEALTHY_DATA, 0)

    human = cli("--now", NOW.isoformat(), "status").stdout
    assert human.count("last_run=never run") == len(JOBS)
    assert human.count("state=never run") == len(JOBS)


# --- each unhealthy reason -------------------------------------------------------------


def test_an_overdue_job_is_exit_1_and_named(cli: Cli, engine: Engine, server_in_utc: None) -> None:
    _healthy(engine)
    with transaction(engine) as s:
        # calls-cleanup's last run worked as of a second before its 06:00 firing
        s.execute(sa.delete(ops_job_runs))
        for job, started in HEALTHY_RUNS.items():
            add_run(s, job, "ok", at(5, 59, 59) if job == "calls-cleanup" else started)
        s.commit()
    code, doc = _status(cli)
    assert code == 1
    assert doc["healthy"] is False
    assert doc["problems"] == [
        "calls-cleanup is overdue: due at 2026-11-29 06:00:00 UTC (*/10 * * * * in UTC), "
        "last ran as of 2026-11-29 05:59:59 UTC"
    ]
    assert [job["job"] for job in doc["jobs"] if job["overdue"]] == ["calls-cleanup"]

    human = cli("--now", NOW.isoformat(), "status")
    assert human.exit_code == 1
    assert "status at 2026-11-29T06:10:30+00:00: UNHEALTHY (1 problem)" in human.stdout
    assert "state=OVERDUE" in human.stdout
    assert f"  - {doc['problems'][0]}" in human.stdout.splitlines()


def test_overdue_is_judged_against_the_latest_firing_before_the_grace(engine: Engine) -> None:
    _healthy(engine)
    # coins-deduct fires every minute: at 06:10:30 the firing due is 06:08 (06:09 and
    # 06:10 are within the two minutes' grace)
    for last_run, overdue in ((at(6, 8), False), (at(6, 7, 59), True)):
        with transaction(engine) as s:
            add_run(s, "coins-deduct", "ok", last_run)
            s.execute(
                sa.delete(ops_job_runs).where(
                    ops_job_runs.c.job == "coins-deduct", ops_job_runs.c.started_at != last_run
                )
            )
            s.commit()
        job = _collect(engine).jobs[0]
        assert (job.job, job.due_at, job.overdue) == ("coins-deduct", at(6, 8), overdue)
    # the last run at 06:07:59 is overdue from 06:10:00 on (due 06:08), not before (06:07)
    assert _collect(engine, at(6, 10, 0)).jobs[0].overdue is True
    assert _collect(engine, at(6, 9, 59)).jobs[0].overdue is False


def test_a_paused_job_is_shown_and_never_overdue(
    cli: Cli, engine: Engine, server_in_utc: None
) -> None:
    _healthy(engine)
    paused = cli("--now", at(6, 0).isoformat(), "jobs", "pause", "presence-cleanup")
    assert paused.exit_code == 0
    later = NOW + timedelta(hours=1)  # every job is overdue by then, but the paused one
    code, doc = _status(cli, now=later)
    assert code == 1
    presence = next(job for job in doc["jobs"] if job["job"] == "presence-cleanup")
    assert (presence["paused"], presence["paused_at"], presence["overdue"]) == (
        True,
        at(6, 0).isoformat(),
        False,
    )
    assert presence["paused_by"].count("@") == 1
    assert [job["job"] for job in doc["jobs"] if job["overdue"]] == [
        "coins-deduct",
        "calls-cleanup",
        "wallets-audit",  # due at 07:00, last ran at 06:00:02
    ]
    human = cli("--now", later.isoformat(), "status").stdout
    assert f"paused=since 2026-11-29 06:00:00 UTC by {presence['paused_by']}" in human
    assert "state=paused" in human


def test_a_failed_last_run_is_exit_1_with_its_error(
    cli: Cli, engine: Engine, server_in_utc: None
) -> None:
    _healthy(engine)
    with transaction(engine) as s:
        add_run(s, "presence-cleanup", "failed", at(6, 10, 1), error="OperationalError: boom")
        s.commit()
    code, doc = _status(cli)
    assert code == 1
    assert doc["problems"] == [
        "presence-cleanup's last run failed (at 2026-11-29 06:10:01 UTC): OperationalError: boom"
    ]
    presence = next(job for job in doc["jobs"] if job["job"] == "presence-cleanup")
    assert (presence["last_outcome"], presence["last_run_failed"], presence["overdue"]) == (
        "failed",
        True,
        False,
    )
    assert (presence["last_failed_at"], presence["last_failure_error"]) == (
        at(6, 10, 1).isoformat(),
        "OperationalError: boom",
    )

    # a later successful run: healthy again, the failure still shown
    with transaction(engine) as s:
        add_run(s, "presence-cleanup", "ok", at(6, 10, 20))
        s.commit()
    code, doc = _status(cli)
    assert (code, doc["problems"]) == (0, [])
    presence = next(job for job in doc["jobs"] if job["job"] == "presence-cleanup")
    assert (presence["last_run_failed"], presence["last_failed_at"]) == (
        False,
        at(6, 10, 1).isoformat(),
    )
    human = cli("--now", NOW.isoformat(), "status").stdout
    assert "last_failure=2026-11-29 06:10:01 UTC: OperationalError: boom" in human


def test_billing_behind_is_exit_1(cli: Cli, engine: Engine, server_in_utc: None) -> None:
    ids = _healthy(engine)
    # never billed, not even the first minute (06:08:10), which started 140 s ago
    _set_coins_spent(engine, ids.call, 0)
    code, doc = _status(cli)
    assert code == 1
    assert (doc["data"]["owing_calls"], doc["data"]["billing_behind_calls"]) == (1, 1)
    assert doc["problems"] == [
        "billing is behind: 1 ongoing call owes coins for minutes that started over "
        "2 minutes ago (is coins-deduct running?)"
    ]


def test_owing_for_minutes_within_the_grace_is_not_billing_behind(engine: Engine) -> None:
    ids = _healthy(engine)
    # only the first minute paid: the second started at 06:09:10, 80 s ago
    _set_coins_spent(engine, ids.call, 10)
    data = _collect(engine).data
    assert data is not None
    assert (data.owing_calls, data.billing_behind_calls) == (1, 0)
    # a call whose first minute starts exactly at now - grace owes for it at that instant
    with transaction(engine) as s:
        edge = add_call(s, ids.caller, ids.listener, start=at(6, 8, 30), coins_spent=0)
        add_call(s, ids.caller, ids.listener, start=at(6, 8, 31), coins_spent=0)
        s.commit()
    data = _collect(engine).data
    assert data is not None
    assert (data.ongoing_calls, data.owing_calls, data.billing_behind_calls) == (3, 3, 1)
    _set_coins_spent(engine, edge, 10)
    assert _collect(engine).healthy


def test_unbillable_calls_are_a_problem(engine: Engine) -> None:
    ids = _healthy(engine)
    with transaction(engine) as s:
        add_call(s, ids.caller, ids.listener, start=at(6, 9), call_type=None)
        s.commit()
    report = _collect(engine)
    assert report.data is not None
    assert (report.data.unbillable_calls, report.data.owing_calls) == (1, 1)
    assert report.problems == [
        "1 ongoing call cannot be billed (half-ended by the app, settled before, or bad "
        "rows: `coins deduct --dry-run` names each): coins deduct skips them"
    ]
    assert report.exit_code == 1


def test_calls_cleanup_would_end_and_listeners_without_badge(engine: Engine) -> None:
    ids = _healthy(engine)
    with transaction(engine) as s:
        # 240 minutes and one second long: cleanup ends it
        add_call(s, ids.caller, ids.listener, start=NOW - timedelta(minutes=240, seconds=1))
        s.execute(sa.delete(listener_badges))
        s.commit()
    report = _collect(engine)
    assert report.data is not None
    assert (report.data.cleanup_due_calls, report.data.listeners_without_badge) == (1, 2)


def test_users_marked_offline_but_seen_within_the_inactive_limit_are_shown_not_a_problem(
    engine: Engine,
) -> None:
    """Once presence cleanup marks a user offline, the app's heartbeat updates
    only last_seen; status shows them (data), and stays healthy."""
    _healthy(engine)
    cutoff = NOW - timedelta(minutes=5)  # the inactive limit
    with transaction(engine) as s:
        add_user(s, online=False, last_seen=NOW - timedelta(seconds=30))  # shown
        add_user(s, online=False, last_seen=cutoff)  # shown: at the limit is within it
        add_user(s, online=False, last_seen=cutoff - timedelta(seconds=1))  # not: inactive
        add_user(s, online=True, last_seen=NOW - timedelta(seconds=30))  # not: online
        s.commit()
    report = _collect(engine)
    assert report.data is not None
    assert (report.data.offline_seen_users, report.data.online_users) == (2, 4)
    assert report.problems == []
    assert report.exit_code == 0


def test_a_schema_not_at_head_is_exit_1_and_the_rest_is_not_read(
    empty_db_url: str, server_in_utc: None
) -> None:
    cli = Cli(empty_db_url)
    code, doc = _status(cli)
    assert code == 1
    assert doc["problems"] == [
        "the database has no schema yet: run `saathii-ops db upgrade` "
        "(jobs and data not read until then)"
    ]
    assert doc["schema"] == {"current": None, "head": "0005", "at_head": False}
    assert (doc["jobs"], doc["data"], doc["badge_date"]) == ([], None, None)
    assert doc["database"]["reachable"] is True

    engine = make_engine(parse_url(empty_db_url))
    try:
        with engine.begin() as conn:
            command.upgrade(schema._config(conn), "0001")
    finally:
        engine.dispose()
    code, doc = _status(cli)
    assert code == 1
    assert doc["problems"] == [
        "the schema is at revision 0001, this version needs 0005: run `saathii-ops db "
        "upgrade` (jobs and data not read until then)"
    ]
    human = cli("--now", NOW.isoformat(), "status")
    assert human.exit_code == 1
    assert "  schema: 0001 (head is 0005)" in human.stdout
    assert "jobs:" not in human.stdout

    prometheus = _families(cli("--now", NOW.isoformat(), "status", "--format", "prometheus"))
    assert prometheus == {
        ("saathii_ops_up", ()): 1.0,
        ("saathii_ops_healthy", ()): 0.0,
        ("saathii_ops_problems", ()): 1.0,
        ("saathii_ops_database_read_only", ()): 0.0,
        ("saathii_ops_schema_at_head", ()): 0.0,
    }


def test_an_unreachable_database_is_exit_3_and_monitors_still_get_a_document() -> None:
    cli = Cli("postgresql://ops:s3cret@127.0.0.1:1/saathii")
    human = cli("status")
    assert human.exit_code == 3
    assert human.stdout == ""
    assert human.stderr.startswith(
        "error: cannot reach the database at postgresql+psycopg2://ops:***@127.0.0.1:1/saathii: "
    )
    assert human.stderr.count("\n") == 1

    machine = cli("--now", NOW.isoformat(), "status", "--json")
    assert machine.exit_code == 3
    doc = json.loads(machine.stdout)
    error = human.stderr.removeprefix("error: ").rstrip("\n")
    assert doc == {
        "now": NOW.isoformat(),
        "healthy": False,
        "problems": [error],
        "database": {
            "url": "postgresql+psycopg2://ops:***@127.0.0.1:1/saathii",
            "reachable": False,
            "server_version": None,
            "error": error,
            "source": "--database-url",
            "read_only": None,
        },
        "schema": None,
        "crontab": doc["crontab"],  # wherever this machine keeps one
        "badge_date": None,
        "jobs": [],
        "data": None,
    }
    scraped = cli("status", "--format", "prometheus")
    assert scraped.exit_code == 3
    assert _families(scraped) == {
        ("saathii_ops_up", ()): 0.0,
        ("saathii_ops_healthy", ()): 0.0,
        ("saathii_ops_problems", ()): 1.0,
    }
    assert "s3cret" not in human.stdout + human.stderr + machine.stdout + scraped.stdout


def test_json_and_prometheus_exclude_each_other(cli: Cli) -> None:
    result = cli("--json", "status", "--format", "prometheus")
    assert result.exit_code == 2
    assert result.stderr == "error: --json and --format prometheus exclude each other: choose one\n"


# --- the installed schedule -------------------------------------------------------------


def _install(crontab: Path, tmp_path: Path, cli: Cli) -> None:
    """The block for the database `cli` uses (status counts only a block of its own)."""
    executable = tmp_path / "bin" / "saathii-ops"
    executable.parent.mkdir(exist_ok=True)
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    result = cli(
        "--now",
        NOW.isoformat(),
        "cron",
        "install",
        "--file",
        str(crontab),
        "--log-dir",
        str(tmp_path / "logs"),
        "--executable",
        str(executable),
        "--server-timezone",
        "UTC",
    )
    assert result.exit_code == 0, result.stderr


def _scheduled(cli: Cli, crontab: Path) -> dict[str, bool | None]:
    _code, doc = _status(cli, "--crontab-file", str(crontab))
    assert doc["crontab"] == str(crontab)
    return {job["job"]: job["scheduled"] for job in doc["jobs"]}


def test_scheduled_is_read_from_the_block_cron_install_wrote(
    cli: Cli, tmp_path: Path, server_in_utc: None
) -> None:
    crontab = tmp_path / "crontab"
    crontab.write_text("MAILTO=ops@example.com\n")
    assert _scheduled(cli, crontab) == dict.fromkeys((j.name for j in JOBS), False)

    _install(crontab, tmp_path, cli)
    assert _scheduled(cli, crontab) == dict.fromkeys((j.name for j in JOBS), True)

    # a line commented out by hand no longer runs
    text = crontab.read_text()
    line = next(line for line in text.splitlines() if line.startswith("*/5 * * * *"))
    crontab.write_text(text.replace(line, "#" + line))
    scheduled = _scheduled(cli, crontab)
    assert scheduled == {j.name: j.name != "presence-cleanup" for j in JOBS}

    # a damaged block (no end marker) is unknown, not an error
    crontab.write_text(text.replace(cron_block.BLOCK_END, ""))
    code, doc = _status(cli, "--crontab-file", str(crontab))
    assert code == 0
    assert {job["scheduled"] for job in doc["jobs"]} == {None}

    # cron remove: nothing scheduled
    crontab.write_text(text)
    assert Cli(None)("cron", "remove", "--file", str(crontab)).exit_code == 0
    assert _scheduled(cli, crontab) == dict.fromkeys((j.name for j in JOBS), False)


def test_where_status_looks_for_the_installed_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "cron.d-saathii-ops"
    monkeypatch.setattr(targets, "SYSTEM_CRONTAB", system)
    monkeypatch.setattr(targets.shutil, "which", lambda name: None)
    assert targets.installed_target(None) is None
    assert targets.installed_jobs(None, ANY_TARGET) is None

    monkeypatch.setattr(targets.shutil, "which", lambda name: f"/usr/bin/{name}")
    target = targets.installed_target(None)
    assert isinstance(target, targets.UserCrontab) and target.program == "/usr/bin/crontab"

    system.write_text("")
    target = targets.installed_target(None)
    assert isinstance(target, targets.FileTarget) and target.path == system
    assert targets.installed_jobs(target, ANY_TARGET) == frozenset()

    mine = tmp_path / "mine"
    target = targets.installed_target(mine)
    assert isinstance(target, targets.FileTarget) and target.path == mine

    # `crontab -l` failing is unknown too
    failing = tmp_path / "crontab"
    failing.write_text("#!/bin/sh\necho 'permission denied' >&2\nexit 1\n")
    failing.chmod(0o755)
    assert targets.installed_jobs(targets.UserCrontab(str(failing)), ANY_TARGET) is None


def test_next_runs_of_server_time_jobs_follow_the_server_timezone(engine: Engine) -> None:
    settings = Settings(server_timezone="Asia/Kolkata")
    jobs = status_service.collect(engine, settings, now=NOW, crontab=None).jobs
    by_name = {job.job: job for job in jobs}
    # 01:00 in Asia/Kolkata is 19:30 UTC; the business-time badge job is unchanged
    assert (by_name["logs-prune"].timezone, by_name["logs-prune"].next_run_at) == (
        "Asia/Kolkata",
        at(19, 30),
    )
    assert by_name["logs-prune"].due_at == at(19, 30, day=28)
    assert by_name["badges-assign"].next_run_at == at(18, 31)


# --- Prometheus --------------------------------------------------------------------------


def _families(result: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, by name and labels, read with prometheus_client's own parser."""
    samples = {}
    for family in text_string_to_metric_families(result.stdout):
        assert family.type == "gauge"
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _expected_samples(doc: dict[str, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """What the Prometheus output must carry, read off the --json document."""

    def stamp(value: str) -> float:
        return datetime.fromisoformat(value).timestamp()

    expected: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {
        ("saathii_ops_up", ()): float(doc["database"]["reachable"]),
        ("saathii_ops_healthy", ()): float(doc["healthy"]),
        ("saathii_ops_problems", ()): float(len(doc["problems"])),
        ("saathii_ops_schema_at_head", ()): float(doc["schema"]["at_head"]),
        ("saathii_ops_database_read_only", ()): float(doc["database"]["read_only"] is not None),
    }
    for job in doc["jobs"]:
        label = (("job", job["job"]),)
        figures: dict[str, Any] = {
            "paused": job["paused"],
            "never_run": job["never_run"],
            "overdue": job["overdue"],
            "last_run_failed": job["last_run_failed"],
            "next_run_timestamp_seconds": stamp(job["next_run_at"]),
        }
        if job["scheduled"] is not None:
            figures["scheduled"] = job["scheduled"]
        if job["last_started_at"] is not None:
            figures["last_run_timestamp_seconds"] = stamp(job["last_started_at"])
            figures["last_run_duration_seconds"] = job["last_duration_seconds"]
            figures["last_exit_code"] = job["last_exit_code"]
        if job["last_failed_at"] is not None:
            figures["last_failure_timestamp_seconds"] = stamp(job["last_failed_at"])
        for name, value in figures.items():
            expected[(f"saathii_ops_job_{name}", label)] = float(value)
        for name, value in (job["last_counts"] or {}).items():
            key = ("saathii_ops_job_last_run_count", (("count", name), ("job", job["job"])))
            expected[key] = float(value)
    for name, value in doc["data"].items():
        expected[(f"saathii_ops_{name}", ())] = float(value)
    return expected


def test_prometheus_output_parses_and_carries_the_json_figures(
    cli: Cli, engine: Engine, tmp_path: Path, server_in_utc: None
) -> None:
    _healthy(engine)
    with transaction(engine) as s:
        add_run(s, "presence-cleanup", "failed", at(6, 10, 1), error="boom")
        s.commit()
    crontab = tmp_path / "crontab"
    _install(crontab, tmp_path, cli)
    _, doc = _status(cli, "--crontab-file", str(crontab))
    result = cli(
        "--now", NOW.isoformat(), "status", "--format", "prometheus", "--crontab-file", str(crontab)
    )
    assert result.exit_code == 1
    samples = _families(result)
    assert samples == _expected_samples(doc)
    # by hand, a few of them
    assert samples[("saathii_ops_healthy", ())] == 0.0
    assert samples[("saathii_ops_job_last_run_failed", (("job", "presence-cleanup"),))] == 1.0
    assert samples[("saathii_ops_job_last_exit_code", (("job", "presence-cleanup"),))] == 1.0
    assert samples[("saathii_ops_job_last_exit_code", (("job", "coins-deduct"),))] == 0.0
    assert samples[("saathii_ops_job_next_run_timestamp_seconds", (("job", "coins-deduct"),))] == (
        at(6, 11).timestamp()
    )
    assert samples[("saathii_ops_billing_behind_calls", ())] == 0.0
    assert samples[("saathii_ops_online_users", ())] == 3.0


# --- the figures are the jobs' own --------------------------------------------------------


@pytest.mark.parametrize("minutes_later", [0, 1, 7, 30])
def test_the_counts_agree_with_the_jobs_dry_runs_on_the_sample_data(
    engine: Engine, minutes_later: int
) -> None:
    settings = Settings()
    with transaction(engine) as s:
        sample_data.fill(s, NOW, settings, users=120, seed=11)
        add_call(s, None, None, start=NOW, call_type=None)  # unbillable
        s.commit()
    now = NOW + timedelta(minutes=minutes_later)
    with transaction(engine, read_only=True) as s:
        deduct = billing.deduct(run_context(s, now, settings, apply=False))
        cleanup = call_cleanup.cleanup(run_context(s, now, settings, apply=False))
        counted = billing.count_calls(s, now, settings)
        counted_cleanup = billing.count_calls(
            s, now, settings, end_rules=call_cleanup.end_rules(now, settings)
        )
    # owing: charged, or ended unpaid (charged nothing)
    unpaid = [c for c in deduct.ended if INSUFFICIENT_BALANCE in c.reasons and not c.coins_charged]
    assert counted.owing == deduct.calls_charged + len(unpaid) > 0
    assert counted.unbillable == deduct.skipped_calls == 1
    assert counted_cleanup.expired == cleanup.calls_ended


# --- the demo (must show) -------------------------------------------------------------------


@pytest.fixture
def demo_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    monkeypatch.setenv("SAATHII_SERVER_TIMEZONE", "UTC")
    monkeypatch.setattr(targets, "SYSTEM_CRONTAB", tmp_path / "no-system-crontab")
    monkeypatch.setattr(targets.shutil, "which", lambda name: None)
    yield Cli(None)


def test_the_demo_ends_with_status_and_every_output_carries_the_same_figures(
    demo_cli: Cli,
) -> None:
    demo = demo_cli("--now", NOW.isoformat(), "--json", "demo", "--users", "120")
    assert demo.exit_code == 0, demo.stderr
    shown = json.loads(demo.stdout)["status"]
    assert shown["healthy"] is True and shown["problems"] == []
    assert [(job["job"], job["last_outcome"]) for job in shown["jobs"]] == [
        (job.name, "ok") for job in JOBS
    ]
    assert all(job["last_run_now"] == NOW.isoformat() for job in shown["jobs"])
    # every ongoing call billed to now, nothing left for cleanup, every listener badged
    assert shown["data"]["owing_calls"] == shown["data"]["billing_behind_calls"] == 0
    assert shown["data"]["cleanup_due_calls"] == shown["data"]["listeners_without_badge"] == 0
    assert shown["data"]["ongoing_calls"] > 0

    code, doc = _status(demo_cli)
    assert code == 0
    assert doc == shown
    scraped = demo_cli("--now", NOW.isoformat(), "status", "--format", "prometheus")
    assert scraped.exit_code == 0
    assert _families(scraped) == _expected_samples(doc)

    human = demo_cli("--now", NOW.isoformat(), "status")
    assert human.exit_code == 0
    lines = human.stdout.splitlines()
    assert lines[0] == "status at 2026-11-29T06:10:30+00:00: healthy"
    for job in doc["jobs"]:
        started = datetime.fromisoformat(job["last_started_at"])
        row = next(line for line in lines if line.startswith(f"  job={job['job']} "))
        assert f"last_run=ok at {started:%Y-%m-%d %H:%M:%S}" in row
        assert "state=ok" in row

    # the demo's own screen: one line per job, then the status verdict
    people = demo_cli("--now", NOW.isoformat(), "demo").stdout.splitlines()
    first = people.index("every job, run once as of 2026-11-29 06:10:30 UTC:")
    rows = people[first + 1 : first + 1 + len(JOBS)]
    assert [row.split()[0] for row in rows] == [job.name for job in JOBS]
    assert all(row.split()[1] == "ok" for row in rows)
    assert "status: healthy" in people
