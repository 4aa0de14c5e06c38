"""`jobs history` (the recent runs of ops_job_runs), `jobs pause --reason` (revision 0004),
and what status says of a paused coins-deduct."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from saathii_ops.db import schema
from saathii_ops.db.engine import make_engine, parse_url, transaction
from saathii_ops.db.tables import ops_job_controls
from saathii_ops.jobs import job_control
from saathii_ops.runtime.registry import JOBS
from tests.conftest import Cli
from tests.factories import T0, add_call, add_run, add_user

NOW = T0 + timedelta(minutes=10)  # 06:10 UTC


def _some_runs(engine: Engine) -> None:
    with transaction(engine) as s:
        add_run(s, "coins-deduct", "ok", T0, counts={"calls_charged": 3, "coins_charged": 90})
        add_run(
            s,
            "coins-deduct",
            "failed",
            T0 + timedelta(minutes=1),
            error="OperationalError: the database is locked",
            seconds=0.25,
        )
        add_run(s, "presence-cleanup", "ok", T0 + timedelta(minutes=1, seconds=30), seconds=0.04)
        add_run(s, "coins-deduct", "skipped", T0 + timedelta(minutes=2), reason="paused")
        add_run(
            s,
            "coins-deduct",
            "ok",
            T0 + timedelta(minutes=3),
            reason="some rows failed",
            counts={"calls_charged": 0, "skipped_calls": 2},
            run_now=T0 - timedelta(days=1),
            host="ops-2",
        )
        s.commit()


def test_history_of_a_job_newest_first_with_every_field(cli: Cli, engine: Engine) -> None:
    _some_runs(engine)
    result = cli("--json", "jobs", "history", "coins-deduct")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["job"], doc["failed_only"], doc["limit"]) == ("coins-deduct", False, 20)
    runs = doc["runs"]
    assert [(r["outcome"], r["reason"]) for r in runs] == [
        ("ok", "some rows failed"),
        ("skipped", "paused"),
        ("failed", None),
        ("ok", None),
    ]
    newest = runs[0]
    assert newest["started_at"] == (T0 + timedelta(minutes=3)).isoformat()
    assert newest["run_now"] == (T0 - timedelta(days=1)).isoformat()
    assert (newest["host"], newest["duration_seconds"]) == ("ops-2", 1.0)
    assert newest["counts"] == {"calls_charged": 0, "skipped_calls": 2}
    assert runs[2]["error"] == "OperationalError: the database is locked"
    assert runs[2]["duration_seconds"] == 0.25

    text = cli("jobs", "history", "coins-deduct").stdout.splitlines()
    assert text == [
        "runs of coins-deduct, newest first (4 runs; --limit 20):",
        "  2026-11-29 06:03:00 UTC  ok (some rows failed)  1.0 s  host ops-2  skipped calls 2"
        " (as of --now 2026-11-28 06:00:00 UTC)",
        "  2026-11-29 06:02:00 UTC  skipped (paused)  1.0 s  host test-host  -",
        "  2026-11-29 06:01:00 UTC  failed  0.2 s  host test-host"
        "  error: OperationalError: the database is locked",
        "  2026-11-29 06:00:00 UTC  ok  1.0 s  host test-host  calls charged 3, coins charged 90",
    ]
    # -v: every count, zeros too
    verbose = cli("-v", "jobs", "history", "coins-deduct").stdout
    assert "calls charged 0, skipped calls 2" in verbose


def test_history_limit_failed_and_every_job(cli: Cli, engine: Engine) -> None:
    _some_runs(engine)
    limited = json.loads(cli("--json", "jobs", "history", "coins-deduct", "--limit", "2").stdout)
    assert [r["started_at"] for r in limited["runs"]] == [
        (T0 + timedelta(minutes=3)).isoformat(),
        (T0 + timedelta(minutes=2)).isoformat(),
    ]
    failed = json.loads(cli("jobs", "history", "--failed", "--json").stdout)
    assert [(r["job"], r["outcome"]) for r in failed["runs"]] == [("coins-deduct", "failed")]

    every = json.loads(cli("--json", "jobs", "history", "--limit", "3").stdout)
    assert every["job"] is None
    assert [(r["job"], r["started_at"]) for r in every["runs"]] == [
        ("coins-deduct", (T0 + timedelta(minutes=3)).isoformat()),
        ("coins-deduct", (T0 + timedelta(minutes=2)).isoformat()),
        ("presence-cleanup", (T0 + timedelta(minutes=1, seconds=30)).isoformat()),
    ]
    text = cli("jobs", "history", "--limit", "3").stdout.splitlines()
    assert text[0] == "runs of every job, newest first (3 runs; --limit 3):"
    assert text[3].startswith("  2026-11-29 06:01:30 UTC  presence-cleanup  ok  0.04 s")

    none = cli("jobs", "history", "badges-assign", "--failed")
    assert (none.exit_code, none.stdout) == (0, "no failed runs of badges-assign recorded\n")


def test_history_of_an_unknown_job_or_a_bad_limit_is_exit_2(cli: Cli) -> None:
    unknown = cli("jobs", "history", "coins-deduction")
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith("error: unknown job 'coins-deduction'; known jobs: ")
    assert cli("jobs", "history", "--limit", "0").exit_code == 2


def test_history_reads_the_job_started_index_on_postgresql(engine: Engine, backend: str) -> None:
    """With 30,000 runs, each job's newest runs come from ix_ops_job_runs_job_started
    (read backwards, stopping at the limit), never from a scan of the table."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL only")
    with transaction(engine) as s:
        s.execute(
            sa.text(
                "INSERT INTO ops_job_runs (job, started_at, finished_at, outcome, host, run_now) "
                "SELECT (ARRAY['coins-deduct','calls-cleanup','presence-cleanup'])[1 + i % 3], "
                "t, t + interval '1 second', CASE WHEN i % 97 = 0 THEN 'failed' ELSE 'ok' END, "
                "'h', t FROM generate_series(1, 30000) AS i, "
                "LATERAL (SELECT timestamptz '2026-11-01' + i * interval '1 minute' AS t) AS x"
            )
        )
        s.commit()
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE ops_job_runs"))
        for job, failed in (("coins-deduct", False), (None, False), ("coins-deduct", True)):
            query = job_control.history_query(job, limit=20, failed_only=failed)
            sql = query.compile(engine, compile_kwargs={"literal_binds": True})
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))
            assert "ix_ops_job_runs_job_started" in plan, plan
            assert "Seq Scan" not in plan, plan
    with transaction(engine, read_only=True) as s:
        assert len(job_control.history(s, None, limit=20, failed_only=True).runs) == 20


# --- pause with a reason ----------------------------------------------------------------


def test_pause_with_a_reason_is_shown_by_jobs_list_and_cleared_by_resume(
    cli: Cli, engine: Engine
) -> None:
    pause = ("jobs", "pause", "coins-deduct", "--reason", "DB failover")
    paused = cli("--now", NOW.isoformat(), "--json", *pause)
    assert paused.exit_code == 0, paused.stderr
    report = json.loads(paused.stdout)
    assert (report["paused"], report["reason"], report["changed_at"]) == (
        True,
        "DB failover",
        NOW.isoformat(),
    )
    by = report["changed_by"]

    text = cli("--now", NOW.isoformat(), "jobs", "pause", "calls-cleanup", "--reason", "x").stdout
    assert text.splitlines() == [
        f"calls-cleanup: paused since 2026-11-29 06:10:00 UTC by {by}: x",
        "  its runs are recorded as skipped, on every host, until "
        "`saathii-ops jobs resume calls-cleanup`",
    ]

    states = {s["job"]: s for s in json.loads(cli("--json", "jobs", "list").stdout)}
    assert states["coins-deduct"]["paused_reason"] == "DB failover"
    listed = cli("jobs", "list").stdout
    assert f"paused=since 2026-11-29 06:10:00 UTC by {by}: DB failover" in listed

    later = NOW + timedelta(hours=1)
    resumed = cli("--now", later.isoformat(), "jobs", "resume", "coins-deduct")
    assert resumed.exit_code == 0
    assert resumed.stdout.splitlines() == [
        f"coins-deduct: resumed at 2026-11-29 07:10:00 UTC by {by}",
        f"  it had been paused since 2026-11-29 06:10:00 UTC by {by}: DB failover",
        "  its next scheduled run does its work (`saathii-ops status` shows when)",
    ]
    with transaction(engine) as s:
        row = s.execute(
            sa.select(ops_job_controls.c.paused, ops_job_controls.c.reason).where(
                ops_job_controls.c.job == "coins-deduct"
            )
        ).one()
    assert tuple(row) == (False, None)
    again = cli("jobs", "resume", "coins-deduct")
    assert again.stdout == "coins-deduct: not paused (nothing changed)\n"


def test_status_names_a_paused_coins_deduct_as_why_billing_is_behind(
    cli: Cli, engine: Engine
) -> None:
    with transaction(engine) as s:
        caller = add_user(s, balance=1000, online=True, last_seen=NOW, busy=True)
        listener = add_user(s, role="listener", online=True, last_seen=NOW, busy=True)
        add_call(s, caller, listener, start=T0)  # never billed: owes since 06:00
        for job in JOBS:
            add_run(s, job.name, "ok", NOW - timedelta(seconds=30))
        s.commit()
    cli(
        "--now",
        (NOW - timedelta(minutes=5)).isoformat(),
        "jobs",
        "pause",
        "coins-deduct",
        "--reason",
        "DB failover",
    )
    doc = json.loads(cli("--now", NOW.isoformat(), "--json", "status").stdout)
    behind = [p for p in doc["problems"] if p.startswith("billing is behind")]
    who = doc["jobs"][0]["paused_by"]
    assert behind == [
        f"billing is behind because coins-deduct is paused since 2026-11-29 06:05:00 UTC by "
        f"{who}: DB failover: 1 ongoing call owes coins for minutes that started over 2 "
        "minutes ago"
    ]
    assert doc["jobs"][0]["paused_reason"] == "DB failover"
    text = cli("--now", NOW.isoformat(), "status").stdout
    assert text.splitlines()[0] == "status at 2026-11-29T06:10:00+00:00: UNHEALTHY (1 problem)"
    assert f"paused=since 2026-11-29 06:05:00 UTC by {who}: DB failover" in text


# --- revision 0004 ----------------------------------------------------------------------


def test_0004_adds_the_reason_beside_the_existing_pauses(empty_db_url: str) -> None:
    engine = make_engine(parse_url(empty_db_url))
    with engine.connect() as conn:
        command.upgrade(schema._config(conn), "0003")
        conn.commit()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ops_job_controls (job, paused, changed_at, changed_by) "
                "VALUES ('coins-deduct', true, '2026-11-29 06:00:00+00', 'ops@host')"
            )
        )
    schema.upgrade(engine)
    with transaction(engine) as s:
        rows = s.execute(
            sa.select(ops_job_controls.c.job, ops_job_controls.c.paused, ops_job_controls.c.reason)
        ).all()
    assert [tuple(r) for r in rows] == [("coins-deduct", True, None)]
    engine.dispose()


def test_0004_sql_on_sqlite_is_a_plain_add_column_that_runs(tmp_path: Path) -> None:
    path = tmp_path / "at-0003.db"
    engine = make_engine(parse_url(f"sqlite:///{path}"))
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), "0003")
    engine.dispose()
    result = Cli(f"sqlite:///{path}")("db", "upgrade", "--sql")
    assert result.exit_code == 0, result.stderr
    assert "ALTER TABLE ops_job_controls ADD COLUMN reason TEXT" in result.stdout
    assert "_alembic_tmp" not in result.stdout  # no batch-mode table copy
    with sqlite3.connect(path) as conn:
        conn.executescript(result.stdout)
    assert Cli(f"sqlite:///{path}")("db", "current").exit_code == 0


def test_jobs_list_and_history_fit_an_80_column_terminal(
    cli: Cli, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _some_runs(engine)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("NO_COLOR", raising=False)
    reason = "the primary fails over to the replica in the other zone tonight"
    cli("--now", NOW.isoformat(), "jobs", "pause", "coins-deduct", "--reason", reason)
    listed = cli("jobs", "list").stdout
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip() for line in listed.splitlines()]
    assert all(len(line) <= 80 for line in lines)
    assert [line.split()[0] for line in lines[1:] if not line.startswith(" ")] == [
        job.name for job in JOBS
    ]
    assert "\x1b[33mpaused since" in listed  # yellow
    assert "tonight" in listed

    history = cli("jobs", "history", "coins-deduct").stdout
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip() for line in history.splitlines()]
    assert all(len(line) <= 80 for line in lines)
    assert lines[:5] == [
        "runs of coins-deduct, newest first (4 runs; --limit 20)",
        "2026-11-29 06:03:00 UTC  ok (some rows failed)     1.0 s",
        "    host ops-2: skipped calls 2 (as of --now 2026-11-28 06:00:00 UTC)",
        "2026-11-29 06:02:00 UTC  skipped (paused)          1.0 s",
        "    host test-host",
    ]
    assert lines[6] == "    host test-host: error: OperationalError: the database is locked"
    assert "\x1b[1;31mfailed" in history and "\x1b[32mok" in history
