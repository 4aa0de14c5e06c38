"""`jobs list | pause | resume` (SPEC §9): a pause in the database holds for every host."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import ops_job_controls, ops_job_runs
from saathii_ops.jobs import job_control
from saathii_ops.runtime.registry import JOBS
from saathii_ops.settings import Settings
from tests.conftest import Cli
from tests.factories import T0, add_pause, add_run, add_user

NOW = T0 + timedelta(minutes=10)
LATER = NOW + timedelta(hours=2)


def _controls(engine: Engine) -> list[tuple[str, bool, str]]:
    with transaction(engine) as s:
        rows = s.execute(
            sa.select(
                ops_job_controls.c.job, ops_job_controls.c.paused, ops_job_controls.c.changed_at
            )
        )
        return [(r.job, r.paused, r.changed_at.isoformat()) for r in rows]


def recorded_runs(engine: Engine) -> list[tuple[str, str, str | None]]:
    with transaction(engine) as s:
        rows = s.execute(
            sa.select(ops_job_runs.c.job, ops_job_runs.c.outcome, ops_job_runs.c.reason).order_by(
                "run_id"
            )
        )
        return [tuple(r) for r in rows]


def test_pause_then_resume_through_the_cli(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        add_user(s, online=True, last_seen=T0)  # presence cleanup has work to do
        s.commit()

    paused = cli("--now", NOW.isoformat(), "--json", "jobs", "pause", "presence-cleanup")
    assert paused.exit_code == 0, paused.stderr
    report = json.loads(paused.stdout)
    assert (report["job"], report["paused"], report["was_paused"]) == (
        "presence-cleanup",
        True,
        False,
    )
    assert report["changed_at"] == NOW.isoformat()
    assert report["changed_by"].count("@") == 1
    assert _controls(engine) == [("presence-cleanup", True, NOW.isoformat())]

    run = cli("--now", NOW.isoformat(), "presence", "cleanup")
    assert run.exit_code == 0
    assert run.stdout.startswith("job=presence-cleanup outcome=skipped exit_code=0 ")
    assert " reason=paused " in run.stdout

    # pausing again changes nothing: the row keeps when it was paused
    again = cli("--now", LATER.isoformat(), "jobs", "pause", "presence-cleanup")
    assert again.exit_code == 0
    assert again.stdout.startswith("presence-cleanup: already paused since 2026-11-29 06:10:00 UTC")
    assert again.stdout.endswith(" (nothing changed)\n")
    assert _controls(engine) == [("presence-cleanup", True, NOW.isoformat())]

    resumed = cli("--now", LATER.isoformat(), "jobs", "resume", "presence-cleanup")
    assert resumed.exit_code == 0
    assert resumed.stdout.startswith("presence-cleanup: resumed at 2026-11-29 08:10:00 UTC by ")
    assert "  it had been paused since 2026-11-29 06:10:00 UTC by " in resumed.stdout
    assert "running" not in resumed.stdout
    assert _controls(engine) == [("presence-cleanup", False, LATER.isoformat())]

    run = cli("--now", LATER.isoformat(), "--json", "presence", "cleanup")
    assert json.loads(run.stdout)["report"]["marked_offline"] == 1
    assert recorded_runs(engine) == [
        ("presence-cleanup", "skipped", "paused"),
        ("presence-cleanup", "ok", None),
    ]


def test_an_unknown_job_is_exit_2_with_the_known_jobs(cli: Cli, engine: Engine) -> None:
    for command in ("pause", "resume"):
        result = cli("jobs", command, "coins-deduction")
        assert result.exit_code == 2
        known = ", ".join(job.name for job in JOBS)
        assert result.stderr == f"error: unknown job 'coins-deduction'; known jobs: {known}\n"
    assert _controls(engine) == []


def test_jobs_list_shows_schedule_pause_and_last_run(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        add_run(s, "presence-cleanup", "ok", NOW - timedelta(minutes=10))
        add_run(s, "presence-cleanup", "failed", NOW - timedelta(minutes=5), error="boom")
        add_run(s, "presence-cleanup", "ok", NOW - timedelta(minutes=15))
        add_run(s, "logs-prune", "skipped", NOW - timedelta(hours=5), reason="locked")
        add_run(s, "no-longer-registered", "ok", NOW)
        s.commit()
    cli("--now", NOW.isoformat(), "jobs", "pause", "logs-prune")

    result = cli("--json", "jobs", "list")
    assert result.exit_code == 0, result.stderr
    states = {state["job"]: state for state in json.loads(result.stdout)}
    assert list(states) == [job.name for job in JOBS]
    presence = states["presence-cleanup"]
    assert {k: presence[k] for k in ("schedule", "timezone", "paused", "paused_by")} == {
        "schedule": "*/5 * * * *",
        "timezone": "server",
        "paused": False,
        "paused_by": None,
    }
    assert (presence["last_outcome"], presence["last_error"], presence["last_started_at"]) == (
        "failed",
        "boom",
        (NOW - timedelta(minutes=5)).isoformat(),
    )
    prune = states["logs-prune"]
    assert (prune["schedule"], prune["paused"], prune["paused_at"]) == (
        "0 1 * * *",
        True,
        NOW.isoformat(),
    )
    assert (prune["last_outcome"], prune["last_reason"]) == ("skipped", "locked")

    human = cli("jobs", "list").stdout.splitlines()
    assert human[0] == "jobs:"
    assert len(human) == 1 + len(JOBS)
    assert (
        "  job=presence-cleanup  schedule=*/5 * * * *  paused=no  "
        "last run=failed at 2026-11-29 06:05:00 UTC: boom"
    ) in human
    assert (
        "  job=logs-prune  schedule=0 1 * * *  paused=since 2026-11-29 06:10:00 UTC by "
        f"{prune['paused_by']}  last run=skipped (locked) at 2026-11-29 01:10:00 UTC"
    ) in human
    assert "  job=badges-assign  schedule=1 0 * * * (Asia/Kolkata)  paused=no  last run=never" in (
        human
    )


def test_a_job_never_run_has_no_last_run(engine: Engine) -> None:
    with transaction(engine, read_only=True) as s:
        states = job_control.list_jobs(s, Settings(schedules={"logs-prune": "15 2 * * *"}))
    prune = next(state for state in states if state.job == "logs-prune")
    assert (prune.schedule, prune.paused, prune.last_outcome, prune.last_started_at) == (
        "15 2 * * *",
        False,
        None,
        None,
    )


def test_resuming_a_job_that_was_never_paused_records_it_running(engine: Engine) -> None:
    with transaction(engine) as s:
        report = job_control.set_paused(
            s, "logs-prune", paused=False, now=NOW, changed_by="ops@host"
        )
        s.commit()
    assert (report.paused, report.was_paused, report.changed_by) == (False, False, "ops@host")
    assert _controls(engine) == [("logs-prune", False, NOW.isoformat())]


def test_a_dry_run_of_a_paused_job_says_a_real_run_would_be_skipped(
    cli: Cli, engine: Engine
) -> None:
    with transaction(engine) as s:
        add_pause(s, "presence-cleanup", NOW)
        s.commit()
    result = cli("--now", NOW.isoformat(), "presence", "cleanup", "--dry-run")
    assert result.exit_code == 0
    assert ' reason="paused: a real run would be skipped" ' in result.stdout


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
        changed_by = s.scalar(sa.select(ops_job_controls.c.changed_by))
    assert changed_by == f"{os.getuid()}@{socket.gethostname()}"
