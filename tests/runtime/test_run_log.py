"""A run's log (SPEC §9): one key=value line per run, for every job and
every outcome, with the one duration the run has (the same in the log, `jobs history`,
`status` and the JSON), who paused a skipped run and why; records follow, indented."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.jobs import presence
from saathii_ops.runtime.registry import JOBS
from tests.conftest import Cli
from tests.factories import T0, add_badge, add_call, add_user

NOW = T0 + timedelta(minutes=20)
PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"]+)(?: |$)')


def parse_line(line: str) -> dict[str, Any]:
    """One logfmt line: the whole line must be key=value pairs."""
    pairs = PAIR.findall(line)
    assert " ".join(f"{k}={v}" for k, v in pairs) == line, line
    return {k: json.loads(v) if v.startswith('"') else v for k, v in pairs}


def run_lines(stdout: str) -> list[dict[str, Any]]:
    """The run lines of a log (the records follow them, indented)."""
    return [parse_line(line) for line in stdout.splitlines() if not line.startswith("  ")]


def history(cli: Cli, job: str) -> dict[str, Any]:
    result = cli("--json", "jobs", "history", job, "--limit", "1")
    run: dict[str, Any] = json.loads(result.stdout)["runs"][0]
    return run


def status_job(cli: Cli, job: str) -> dict[str, Any]:
    doc = json.loads(cli("--now", NOW.isoformat(), "--json", "status").stdout)
    found: dict[str, Any] = next(j for j in doc["jobs"] if j["job"] == job)
    return found


def some_work(engine: Engine) -> None:
    with transaction(engine) as s:
        caller = add_user(s, balance=1_000, online=True, last_seen=NOW)
        listener = add_user(s, role="listener", online=True, last_seen=T0)  # stale: offline
        add_badge(s, listener, NOW.date(), "basic", "1.00", "6.00")
        add_call(s, caller, listener, start=NOW - timedelta(minutes=3), coins_spent=10)
        s.commit()


def test_every_job_logs_one_key_value_line_with_the_duration_jobs_history_shows(
    cli: Cli, engine: Engine
) -> None:
    some_work(engine)
    for job in JOBS:
        result = cli("--now", NOW.isoformat(), *job.command.split())
        assert result.exit_code == 0, result.stdout + result.stderr
        (line,) = run_lines(result.stdout)
        recorded = history(cli, job.name)
        assert line["job"] == job.name
        assert (line["outcome"], line["exit_code"]) == ("ok", "0")
        assert line["now"] == NOW.isoformat()
        # one duration: the log's is the recorded one that history and status show
        assert float(line["duration_seconds"]) == recorded["duration_seconds"]
        assert status_job(cli, job.name)["last_duration_seconds"] == recorded["duration_seconds"]
        for name, value in recorded["counts"].items():
            assert line[name] == str(value), (job.name, name)
        json_run = json.loads(cli("--now", NOW.isoformat(), "--json", *job.command.split()).stdout)
        assert json_run["duration_seconds"] == history(cli, job.name)["duration_seconds"]
    # the charged call's 4th minute; the stale listener marked offline
    coins = parse_line(cli("--now", NOW.isoformat(), "coins", "deduct").stdout.splitlines()[0])
    assert (coins["calls_charged"], coins["coins_charged"]) == ("0", "0")  # already charged
    assert coins["summary"].startswith("charged 0 calls 0 coins")


def test_a_paused_run_logs_who_paused_it_and_why(cli: Cli) -> None:
    paused = cli("jobs", "pause", "presence-cleanup", "--reason", 'db migration "phase 2"')
    assert paused.exit_code == 0, paused.stderr
    result = cli("--now", NOW.isoformat(), "presence", "cleanup")
    assert result.exit_code == 0
    (line,) = run_lines(result.stdout)
    recorded = history(cli, "presence-cleanup")
    assert {k: line[k] for k in ("job", "outcome", "exit_code", "reason", "paused_reason")} == {
        "job": "presence-cleanup",
        "outcome": "skipped",
        "exit_code": "0",
        "reason": "paused",
        "paused_reason": 'db migration "phase 2"',
    }
    assert (
        line["paused_by"]
        == json.loads(cli("--json", "status", "--crontab-file", "/none").stdout)["jobs"][2][
            "paused_by"
        ]
    )
    assert float(line["duration_seconds"]) == recorded["duration_seconds"]
    assert result.stdout.count("\n") == 1


def test_a_failed_run_and_an_unready_database_log_their_line_too(
    cli: Cli, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    def fail(*args: object, **kwargs: object) -> sa.ColumnElement[bool]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(presence, "inactive_online", fail)
    result = cli("--now", NOW.isoformat(), "presence", "cleanup")
    assert result.exit_code == 1
    (line,) = run_lines(result.stdout)
    assert (line["outcome"], line["exit_code"], line["error"]) == (
        "failed",
        "1",
        "RuntimeError: disk on fire",
    )
    assert float(line["duration_seconds"]) == history(cli, "presence-cleanup")["duration_seconds"]

    # no schema: the run never starts (exit 3), and its log still has the line
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    result = Cli(empty)("--now", NOW.isoformat(), "coins", "deduct")
    assert result.exit_code == 3
    (line,) = run_lines(result.stdout)
    assert (line["job"], line["outcome"], line["exit_code"]) == ("coins-deduct", "failed", "3")
    assert "db upgrade" in line["error"]
    assert result.stderr.startswith("error: ")


def test_the_ended_calls_follow_their_run_line_indented(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        caller = add_user(s, balance=0, online=True, last_seen=NOW)
        listener = add_user(s, role="listener", online=True, last_seen=NOW)
        add_badge(s, listener, NOW.date(), "basic", "1.00", "6.00")
        call = add_call(s, caller, listener, start=NOW - timedelta(minutes=3), coins_spent=10)
        s.commit()
    result = cli("--now", NOW.isoformat(), "coins", "deduct")
    lines = result.stdout.splitlines()
    assert parse_line(lines[0])["calls_ended"] == "1"
    assert lines[1].startswith(f"  ended call_id={call} ")
    assert len(lines) == 2
