"""Every statement of a run is bounded (statement_timeout_seconds), its bookkeeping too:
PostgreSQL, a table locked by another session, as by a DBA's `LOCK TABLE` in psql."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from tests.factories import T0
from tests.support.runs import (
    add_a_call_to_charge,
)


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
    postgresql_only: None, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    """`LOCK TABLE ops_job_runs IN EXCLUSIVE MODE` in psql, then `coins deduct` with
    statement_timeout_seconds = 3: the run's own record times out, its failure record
    too, within seconds; before, it waited for ever."""
    add_a_call_to_charge(engine)
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
    postgresql_only: None, db_url: str, engine: Engine, tmp_path: Path
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
