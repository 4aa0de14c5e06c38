"""`status` never says healthy when it is not: a paused job with work waiting,
no badge for today after the day's badges-assign time (and the calls settled at basic
rates meanwhile), a read-only database or one in recovery, and a run's last exit code,
in the JSON and in Prometheus. The base is test_status's healthy database at NOW."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from saathii_ops.db.engine import make_engine, parse_url, transaction
from saathii_ops.db.tables import ops_job_runs
from tests.conftest import Cli
from tests.factories import add_call, add_pause, add_run, add_user
from tests.jobs.test_status import NOW, _families, _healthy, at

PAUSED_AT = at(6, 0)


def _status(cli: Cli, *args: str, now: str = NOW.isoformat()) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = cli("--now", now, "status", "--json", "--crontab-file", "/nonexistent", *args)
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture(autouse=True)
def _server_in_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAATHII_SERVER_TIMEZONE", "UTC")


# --- a paused job with work waiting -----------------------------------------------------


@dataclass(frozen=True)
class WaitingWork:
    """Work waiting for a job on the healthy database: no problem while the job runs."""

    job: str
    add: Callable[[Session], None]  # the work, if the healthy database has none for it
    figure: str  # the figure that counts it
    count: int
    problem: str  # once the job is paused


def _call_to_end(s: Session) -> None:
    caller = add_user(s, balance=0)
    listener = add_user(s, role="listener")
    # past the 240-minute limit, and paid for every started minute (owes nothing)
    add_call(s, caller, listener, start=NOW - timedelta(minutes=241), coins_spent=2420)


def _users_to_mark(s: Session) -> None:
    add_user(s, online=True, last_seen=NOW - timedelta(minutes=6))  # inactive: 5 min
    add_user(s, online=False, last_seen=NOW, busy=True)  # busy on no call


WAITING_WORK = [
    WaitingWork(
        "calls-cleanup",
        _call_to_end,
        "cleanup_due_calls",
        1,
        "calls-cleanup is paused since 2026-11-29 06:00:00 UTC by ops: upgrade, with work "
        "waiting: 1 ongoing call it would end now",
    ),
    WaitingWork(
        "presence-cleanup",
        _users_to_mark,
        "presence_due_users",
        2,
        "presence-cleanup is paused since 2026-11-29 06:00:00 UTC by ops: upgrade, with work "
        "waiting: 2 users it would mark offline or clear of busy now",
    ),
    WaitingWork(
        "badges-assign",
        lambda s: None,  # one active listener has no badge for today; the day's run is done
        "listeners_without_badge",
        1,
        "badges-assign is paused since 2026-11-29 06:00:00 UTC by ops: upgrade, with work "
        "waiting: 1 active listener without a badge for today",
    ),
]


@pytest.fixture(params=WAITING_WORK, ids=lambda work: work.job)
def waiting(request: pytest.FixtureRequest, engine: Engine) -> WaitingWork:
    """The healthy database with work waiting for one job, which is running."""
    work: WaitingWork = request.param
    _healthy(engine)
    with transaction(engine) as s:
        work.add(s)
        s.commit()
    return work


def _pause(engine: Engine, job: str) -> None:
    with transaction(engine) as s:
        add_pause(s, job, PAUSED_AT, changed_by="ops", reason="upgrade")
        s.commit()


def test_a_paused_job_with_work_waiting_is_a_problem(
    cli: Cli, engine: Engine, waiting: WaitingWork
) -> None:
    code, doc = _status(cli)
    assert (code, doc["data"][waiting.figure], doc["problems"]) == (0, waiting.count, [])

    _pause(engine, waiting.job)
    code, doc = _status(cli)
    assert code == 1
    assert doc["problems"] == [waiting.problem]


# --- no badge for today after the day's badges-assign time ------------------------------


def _without_badges_run(engine: Engine) -> None:
    with transaction(engine) as s:
        s.execute(sa.delete(ops_job_runs).where(ops_job_runs.c.job == "badges-assign"))
        s.commit()


def test_no_badge_for_today_after_the_days_run_time_is_a_problem_with_the_basic_settlements(
    cli: Cli, engine: Engine
) -> None:
    ids = _healthy(engine)
    _without_badges_run(engine)
    with transaction(engine) as s:
        # the idle listener (no badge row for today) on a call whose caller went silent
        caller = add_user(s, balance=100, online=True, last_seen=NOW - timedelta(minutes=11))
        idle = add_user(s, role="listener", online=True, last_seen=NOW)
        add_call(s, caller, idle, start=at(6, 0), coins_spent=110)
        s.commit()
    # calls cleanup settles it (at basic rates: no badge row for its day), and the call of
    # the listener who has today's badge is not counted
    ended = cli("--now", NOW.isoformat(), "calls", "cleanup")
    assert ended.exit_code == 0, ended.stderr
    assert ids.listener != idle

    code, doc = _status(cli)
    assert code == 1
    assert doc["data"]["calls_settled_without_badge"] == 1
    assert doc["data"]["listeners_without_badge"] == 2
    assert doc["problems"] == [
        "2 active listeners without a badge for today (2026-11-29): badges-assign was due at "
        "2026-11-28 18:31:00 UTC (1 0 * * * in Asia/Kolkata) and it has never run; 1 call "
        "settled today at basic rates for want of a badge row"
    ]

    # before today's firing (00:01 IST, with the overdue grace) it is no problem yet
    code, doc = _status(cli, now=at(18, 32, day=28).isoformat())
    assert (code, doc["problems"]) == (0, [])

    # assigned a minute later: nothing left to say, and what was paid stays counted (the
    # settlement was made before the badge row)
    later = (NOW + timedelta(minutes=1)).isoformat()
    assigned = cli("--now", later, "badges", "assign")
    assert assigned.exit_code == 0, assigned.stderr
    code, doc = _status(cli, now=later)
    assert (code, doc["problems"], doc["data"]["listeners_without_badge"]) == (0, [], 0)
    assert doc["data"]["calls_settled_without_badge"] == 1


def test_a_failed_badges_run_today_leaves_the_problem_named(cli: Cli, engine: Engine) -> None:
    _healthy(engine)
    _without_badges_run(engine)
    with transaction(engine) as s:
        add_run(s, "badges-assign", "failed", at(18, 31, 2, day=28), error="boom")
        s.commit()
    code, doc = _status(cli)
    assert code == 1
    assert (
        "1 active listener without a badge for today (2026-11-29): badges-assign was due at "
        "2026-11-28 18:31:00 UTC (1 0 * * * in Asia/Kolkata) and its last run failed"
    ) in doc["problems"]


# --- a database no job can write to -----------------------------------------------------


def _alter_database(db_url: str, setting: str) -> None:
    url = parse_url(db_url)
    engine = make_engine(url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("SET default_transaction_read_only = off")  # this session's
        conn.exec_driver_sql(f'ALTER DATABASE "{url.database}" SET {setting}')
    engine.dispose()


def test_a_read_only_database_is_a_problem_named_as_such(
    cli: Cli, engine: Engine, db_url: str, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("default_transaction_read_only is PostgreSQL's")
    _healthy(engine)
    _alter_database(db_url, "default_transaction_read_only = on")
    engine.dispose()
    for _ in range(2):  # the second with the first's record kept, still unwritable
        run = cli("--now", NOW.isoformat(), "coins", "deduct")
        assert run.exit_code == 3
        assert run.stderr.startswith("error: the database is read-only (")
        assert run.stderr.count("\n") == 1, run.stderr
    code, doc = _status(cli)
    assert code == 1
    assert doc["database"]["read_only"] == "default_transaction_read_only = on"
    assert doc["problems"] == [
        "the database is read-only (default_transaction_read_only = on): every job's run "
        "fails (exit 3) and nothing is billed, ended or recorded"
    ]
    scraped = cli("--now", NOW.isoformat(), "status", "--format", "prometheus")
    assert _families(scraped)[("saathii_ops_database_read_only", ())] == 1.0

    # writable again: the next run records the one the read-only database refused, first
    _alter_database(db_url, "default_transaction_read_only = off")
    assert cli("--now", NOW.isoformat(), "coins", "deduct").exit_code == 0
    with transaction(engine) as s:
        runs = s.execute(
            sa.select(ops_job_runs.c.outcome, ops_job_runs.c.error)
            .where(ops_job_runs.c.job == "coins-deduct", ops_job_runs.c.started_at > at(6, 10, 0))
            .order_by(ops_job_runs.c.run_id)
        ).all()
    assert [outcome for outcome, _ in runs] == ["failed", "failed", "ok"]
    assert runs[0][1].startswith("the database is read-only (")
    _, doc = _status(cli)
    assert doc["problems"] == [] and doc["database"]["read_only"] is None


def test_a_database_in_recovery_is_a_problem_named_as_such(
    cli: Cli, engine: Engine, db_url: str, backend: str
) -> None:
    """A standby cannot be made on the shared server: its pg_is_in_recovery() is stood in
    for by a function of the same name found first on the database's search_path."""
    if backend != "postgresql":
        pytest.skip("recovery is PostgreSQL's")
    _healthy(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA standby")
        conn.exec_driver_sql(
            "CREATE FUNCTION standby.pg_is_in_recovery() RETURNS boolean "
            "LANGUAGE sql AS 'SELECT true'"
        )
    _alter_database(db_url, "search_path = standby, pg_catalog, public")
    engine.dispose()
    code, doc = _status(cli)
    assert code == 1
    assert doc["problems"] == [
        "the database is read-only (the server is in recovery, pg_is_in_recovery(): a standby, "
        "or a restore): every job's run fails (exit 3) and nothing is billed, ended or recorded"
    ]


# --- what a run found: its headline, its exit code --------------------------------------


def test_an_audit_that_found_something_says_so_and_prometheus_has_its_exit_code(
    cli: Cli, engine: Engine, tmp_path: Path
) -> None:
    _healthy(engine)
    with transaction(engine) as s:
        wallet_owner = add_user(s, balance=0)
        s.execute(
            sa.text("UPDATE user_wallets SET balance_coins = 50 WHERE user_id = :u"),
            {"u": wallet_owner},
        )
        add_run(s, "coins-deduct", "failed", at(6, 10, 5), error="interrupted by SIGTERM")
        add_run(
            s,
            "presence-cleanup",
            "failed",
            at(6, 10, 5),
            error="lost the database connection: server closed the connection unexpectedly",
        )
        s.commit()
    audit = cli("--now", NOW.isoformat(), "wallets", "audit")
    assert audit.exit_code == 1
    # its key=value line (plain text, as under cron) says what it found
    line = audit.stdout.splitlines()[0]
    assert line.startswith("job=wallets-audit ") and " exit_code=1 " in line
    assert line.endswith(' summary="found 1 wallet off the ledger"')

    scraped = cli("--now", NOW.isoformat(), "status", "--format", "prometheus")
    families = _families(scraped)
    exit_codes = {
        labels[0][1]: value
        for (name, labels), value in families.items()
        if name == "saathii_ops_job_last_exit_code"
    }
    assert exit_codes == {
        "coins-deduct": 143.0,
        "calls-cleanup": 0.0,
        "presence-cleanup": 3.0,
        "badges-assign": 0.0,
        "logs-prune": 0.0,
        "wallets-audit": 1.0,
    }
    assert families[("saathii_ops_job_last_run_failed", (("job", "wallets-audit"),))] == 0.0
    _, doc = _status(cli)
    assert {job["job"]: job["last_exit_code"] for job in doc["jobs"]} == exit_codes
    if shutil.which("promtool"):
        checked = subprocess.run(
            ["promtool", "check", "metrics"], input=scraped.stdout, text=True, capture_output=True
        )
        # it parses; its one lint note is older than these rules (a gauge named *_count)
        complaints = [
            line
            for line in (checked.stdout + checked.stderr).splitlines()
            if not line.startswith("saathii_ops_job_last_run_count ")
        ]
        assert complaints == [], checked.stdout + checked.stderr


def test_every_audit_finding_is_named_in_its_headline() -> None:
    """Each count that makes the audit exit 1 has its words in `found()`: a finding
    added later cannot leave the headline silent (or 'ok')."""
    import dataclasses

    from saathii_ops.jobs.wallet_audit import WalletAuditReport

    counts = [f.name for f in dataclasses.fields(WalletAuditReport) if f.type == "int"]
    none = WalletAuditReport(now=NOW, **dict.fromkeys(counts, 0))
    assert none.found() is None
    for name in counts:
        report = WalletAuditReport(now=NOW, **{**dict.fromkeys(counts, 0), name: 2})
        assert report.failed_rows == 2, name
        found = report.found()
        assert found is not None and found.startswith("found 2 "), (name, found)


def test_a_run_that_found_something_is_never_titled_ok_on_a_terminal() -> None:
    import dataclasses
    import io

    from rich.console import Console

    from saathii_ops.jobs.wallet_audit import WalletAuditReport
    from saathii_ops.output.render import show
    from saathii_ops.runtime.runner import RunResult

    counts = [f.name for f in dataclasses.fields(WalletAuditReport) if f.type == "int"]
    report = WalletAuditReport(now=NOW, **{**dict.fromkeys(counts, 0), "wallets_off": 1})
    for outcome, title in (
        ("ok", "wallets-audit: found 1 wallet off the ledger"),
        ("dry-run", "wallets-audit: dry-run: found 1 wallet off the ledger (nothing was changed)"),
    ):
        out = io.StringIO()
        console = Console(file=out, force_terminal=True, width=200, color_system=None)
        show(console, RunResult("wallets-audit", outcome, NOW, 0.1, report), json_output=False)
        shown = " ".join(out.getvalue().split())  # the table may wrap its title
        assert shown.startswith(title + " "), shown
