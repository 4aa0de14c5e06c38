"""`saathii-ops demo` and the sample data it uses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops import sample_data
from saathii_ops.db import transaction
from saathii_ops.jobs import JOBS
from saathii_ops.models import User, UserCall, UserTransaction, UserWallet
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
                    UserCall.call_type, UserCall.start_time, UserCall.coins_spent, UserCall.status
                ).order_by(UserCall.call_id)
            ).all()
            ledger = s.execute(
                sa.select(UserWallet.balance_coins, sa.func.sum(UserTransaction.coins_change))
                .join(UserTransaction, UserTransaction.wallet_id == UserWallet.wallet_id)
                .group_by(UserWallet.wallet_id, UserWallet.balance_coins)
                .order_by(UserWallet.wallet_id)
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
        s.execute(sa.delete(UserTransaction))
        s.execute(sa.delete(UserWallet))
        s.execute(sa.delete(UserCall))
        s.execute(sa.delete(User))
        sample_data.fill(s, NOW, Settings(), users=80, seed=3)
        s.commit()
    assert snapshot()[0] == calls
