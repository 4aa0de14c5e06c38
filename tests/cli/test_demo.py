"""`saathii-ops demo` and the sample data it uses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import user_calls, user_transactions, user_wallets, users
from saathii_ops.demo import sample_data
from saathii_ops.runtime.registry import JOBS
from saathii_ops.settings import Settings
from tests.conftest import Cli

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


def test_demo_builds_the_embedded_database_and_runs_every_job(tmp_path: Path) -> None:
    cli = Cli(None)
    result = cli("--now", NOW.isoformat(), "--json", "demo", "--users", "120")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    embedded = tmp_path / "xdg-data" / "saathii-ops" / "saathii.db"
    assert doc["url"] == f"sqlite:///{embedded}"
    assert embedded.exists()
    assert doc["sample"]["users"] == 120
    assert doc["sample"]["listeners"] == 30
    assert [run["job"] for run in doc["runs"]] == [job.name for job in JOBS]
    assert all(run["outcome"] == "ok" for run in doc["runs"])
    prune = next(run for run in doc["runs"] if run["job"] == "logs-prune")
    assert str(embedded.parent / "demo-logs") in json.dumps(prune["report"])

    kept = cli("--now", NOW.isoformat(), "--json", "demo")
    assert json.loads(kept.stdout)["sample"] is None
    reset = cli("--now", NOW.isoformat(), "--json", "demo", "--reset", "--users", "40")
    assert json.loads(reset.stdout)["sample"]["users"] == 40


def test_demo_refuses_a_server() -> None:
    result = Cli("postgresql://postgres@127.0.0.1:5432/test")("demo")
    assert result.exit_code == 2
    assert "give it an SQLite URL, never a server" in result.stderr


def test_sample_data_is_deterministic_and_backed_by_the_ledger(engine: Engine) -> None:
    def snapshot() -> tuple[list[tuple[object, ...]], ...]:
        with transaction(engine) as s:
            calls = s.execute(
                sa.select(
                    user_calls.c.call_type,
                    user_calls.c.start_time,
                    user_calls.c.coins_spent,
                    user_calls.c.status,
                ).order_by(user_calls.c.call_id)
            ).all()
            ledger = s.execute(
                sa.select(
                    user_wallets.c.balance_coins, sa.func.sum(user_transactions.c.coins_change)
                )
                .join(user_transactions, user_transactions.c.wallet_id == user_wallets.c.wallet_id)
                .group_by(user_wallets.c.wallet_id, user_wallets.c.balance_coins)
                .order_by(user_wallets.c.wallet_id)
            ).all()
        return [tuple(c) for c in calls], [tuple(r) for r in ledger]

    with transaction(engine) as s:
        report = sample_data.fill(s, NOW, Settings(), users=80, seed=3)
        s.commit()
    calls, ledger = snapshot()
    assert report.users == 80 and report.ongoing_calls == 8
    assert sum(1 for c in calls if c[3] == "ongoing") == 8
    assert ledger and all(balance == total for balance, total in ledger)

    with transaction(engine) as s:
        s.execute(sa.delete(user_transactions))
        s.execute(sa.delete(user_wallets))
        s.execute(sa.delete(user_calls))
        s.execute(sa.delete(users))
        sample_data.fill(s, NOW, Settings(), users=80, seed=3)
        s.commit()
    assert snapshot()[0] == calls


def test_the_demo_fits_a_screen_and_says_what_to_try_next(tmp_path: Path) -> None:
    cli = Cli(None)
    result = cli("--now", NOW.isoformat(), "demo")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) <= 60
    assert "\x1b[" not in result.stdout
    embedded = tmp_path / "xdg-data" / "saathii-ops" / "saathii.db"
    assert lines[0] == f"demo database: sqlite:///{embedded}"
    assert lines[1] == (
        "sample data: 200 users (50 listeners), 200 wallets, 20 ongoing calls, "
        "245 past calls, 361 transactions"
    )
    first = lines.index("every job, run once as of 2026-11-29 06:00:00 UTC:")
    rows = lines[first + 1 : first + 1 + len(JOBS)]
    assert [row.split()[:2] for row in rows] == [[job.name, "ok"] for job in JOBS]
    assert rows[0].endswith(
        "calls charged 3, coins charged 90, minutes charged 9, calls ended 3"
    ), rows[0]
    assert "status: healthy" in lines
    text = result.stdout
    assert "Without cron nothing runs the jobs again" in text
    assert "coins-deduct, calls-cleanup and presence-cleanup overdue" in text
    assert "`saathii-ops demo` (it keeps the data)" in text
    assert "`saathii-ops cron install`" in text
    tries = lines[lines.index("Try next:") + 1 :]
    assert [line.split("#")[0].strip() for line in tries] == [
        "saathii-ops status",
        "saathii-ops jobs history",
        "saathii-ops coins deduct --dry-run",
        "saathii-ops -v demo",
    ]

    # the global -v: every row each job changed
    for argv in (["-v", "demo"], ["--verbose", "demo"]):
        verbose = cli("--now", NOW.isoformat(), *argv).stdout
        assert "sample data: kept the existing" not in verbose
        assert "kept the existing sample data (--reset starts afresh)" in verbose
        assert "\n  assignments listener_id=" in verbose
        assert len(verbose.splitlines()) > 60


def test_the_demo_on_another_sqlite_file_names_it_in_what_to_try(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'my demo.db'}"
    result = Cli(url)("--now", NOW.isoformat(), "demo", "--users", "40")
    assert result.exit_code == 0, result.stderr
    assert f"  saathii-ops --database-url '{url}' status " in result.stdout


def test_jobs_history_lists_the_demos_runs(tmp_path: Path) -> None:
    cli = Cli(None)
    assert cli("--now", NOW.isoformat(), "demo").exit_code == 0
    history = cli("jobs", "history", "coins-deduct")
    assert history.exit_code == 0, history.stderr
    lines = history.stdout.splitlines()
    assert lines[0] == "runs of coins-deduct, newest first (1 run; --limit 20):"
    fields = lines[1].split("  ")
    # started (the real clock), outcome, duration, host, counts, the demo's --now
    assert fields[2] == "ok"
    assert fields[3].endswith(" s") and float(fields[3].split()[0]) >= 0
    assert "calls charged 3, coins charged 90" in lines[1]
    assert lines[1].endswith("(as of --now 2026-11-29 06:00:00 UTC)")
    doc = json.loads(cli("--json", "jobs", "history", "coins-deduct").stdout)
    (run,) = doc["runs"]
    assert (run["outcome"], run["run_now"]) == ("ok", NOW.isoformat())
    assert run["duration_seconds"] >= 0
