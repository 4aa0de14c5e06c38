"""The fault suite, on PostgreSQL, with real `saathii-ops` processes.

Runs are killed, interrupted, terminated on the server and blocked by locks; after
each fault, the data is exactly what one clean run makes, on a copy of the same
data (CREATE DATABASE … TEMPLATE) at the same --now. A run is made slow at a
known point by the test holding user_transactions in EXCLUSIVE mode (readers pass,
writers wait, as behind a DBA's maintenance): billing's first ledger insert waits
for it, mid-transaction, after the plan is stored, locked and its wallets debited.
(A row another session holds no longer makes a run wait: tests/postgres/test_held_rows.py.)

Marked `faults`: deselected by default, `.ci/run` runs it (`pytest -m faults`).
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import parse_url
from tests.conftest import Databases
from tests.support.faults import (
    NOW,
    TableLock,
    audit_rows,
    fault_engine,
    one_line,
    our_backends,
    wait_until,
)
from tests.support.installed import SAATHII_OPS

pytestmark = pytest.mark.faults

CALLS = 3000
# the table whose writes the test blocks: both coin deduction and call cleanup write
# ledger rows (call 10: a video call 130 s old, owes 2 minutes; its caller silent for
# 13 minutes, so both act on it)
BLOCKED_TABLE = "user_transactions"

# Every row the jobs may change, without what differs between equal runs: serial ids
# a rolled-back run used up, the run's identifier and the database clock.
COMPARED = {
    "user_wallets": "SELECT * FROM user_wallets ORDER BY wallet_id",
    "user_transactions": (
        "SELECT wallet_id, tx_type, coins_change, money_change FROM user_transactions "
        "ORDER BY wallet_id, tx_type, coins_change, money_change"
    ),
    "user_calls": "SELECT * FROM user_calls ORDER BY call_id",
    "user_status": "SELECT * FROM user_status ORDER BY user_id",
    "ops_settlements": (
        "SELECT call_id, end_time, duration_seconds, duration_minutes, coins_spent, "
        "listener_money_earned, paid_minutes, rate_per_minute FROM ops_settlements "
        "ORDER BY call_id"
    ),
}

# callers 2g-1 and listeners 2g; every call ongoing, started up to an hour before NOW;
# balances from 0 to 399 coins (some calls end for want of coins); some parties silent
# for up to 19 minutes (call cleanup ends their calls)
DATA = f"""
INSERT INTO users (username, sex, dob, phone)
SELECT 'f' || g, 'male', DATE '1995-05-05', '+91' || g FROM generate_series(1, {2 * CALLS}) g;
INSERT INTO user_roles (user_id, role)
SELECT user_id, CASE WHEN user_id % 2 = 0 THEN 'listener' ELSE 'customer' END FROM users;
INSERT INTO user_wallets (user_id, balance_coins, withdrawable_money)
SELECT user_id, CASE WHEN user_id % 2 = 1 THEN (user_id * 37) % 400 ELSE 0 END, 0 FROM users;
INSERT INTO user_transactions (wallet_id, tx_type, coins_change, money_change)
SELECT wallet_id, 'purchase', balance_coins, 0 FROM user_wallets WHERE balance_coins > 0;
INSERT INTO user_status (user_id, is_online, last_seen, is_busy, wait_time)
SELECT user_id, true, TIMESTAMPTZ '{NOW.isoformat()}' - ((user_id * 7) % 20) * INTERVAL '1 minute',
       true, CASE WHEN user_id % 2 = 1 THEN 5 END
FROM users;
INSERT INTO user_calls (user_id, listener_id, call_type, start_time, coins_spent, status)
SELECT 2 * g - 1, 2 * g, CASE WHEN g % 5 = 0 THEN 'video' ELSE 'audio' END,
       TIMESTAMPTZ '{NOW.isoformat()}' - ((g * 13) % 3600) * INTERVAL '1 second',
       CASE WHEN g % 5 = 0 THEN 60 ELSE 10 END, 'ongoing'
FROM generate_series(1, {CALLS}) g;
"""


@pytest.fixture
def pg(databases: Databases) -> Databases:
    if databases.backend != "postgresql":
        pytest.skip("the fault suite runs on PostgreSQL")
    return databases


class Data:
    """A database with the suite's data, and clean copies of it as it was."""

    def __init__(self, databases: Databases) -> None:
        self.databases = databases
        self.url = databases.migrated()
        self.engine = fault_engine(self.url)
        raw = self.engine.raw_connection()
        with raw.cursor() as cursor:
            cursor.execute(DATA)
        raw.commit()
        raw.close()
        self.pristine = self._copy(self.url)  # before any fault
        self.made: list[str] = [self.pristine]

    def _copy(self, source: str) -> str:
        self.engine.dispose()  # CREATE DATABASE … TEMPLATE needs the source unused
        copy = self.databases._new_name()
        template = sa.make_url(source).database
        admin = sa.create_engine(parse_url(self.databases_admin()), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{copy}" TEMPLATE "{template}"')
        admin.dispose()
        return str(sa.make_url(self.url).set(database=copy).render_as_string(False))

    @staticmethod
    def databases_admin() -> str:
        from tests.conftest import POSTGRES_ADMIN_URL

        assert POSTGRES_ADMIN_URL
        return POSTGRES_ADMIN_URL

    def clean_run_on_a_copy(self, *jobs: list[str]) -> dict[str, list[Any]]:
        """What one clean run of each of `jobs` makes of the data as it was."""
        copy = self._copy(self.pristine)
        self.made.append(copy)
        for job in jobs:
            done = ops(copy, *job)
            assert done.returncode == 0, done.stderr
        return rows(copy)

    def close(self) -> None:
        self.engine.dispose()
        for url in [*self.made, self.url]:
            self.databases.drop(url)


@pytest.fixture
def data(pg: Databases) -> Iterator[Data]:
    made = Data(pg)
    yield made
    made.close()


def rows(url: str) -> dict[str, list[Any]]:
    engine = fault_engine(url)
    try:
        with engine.connect() as conn:
            return {
                name: [tuple(r) for r in conn.exec_driver_sql(sql)]
                for name, sql in COMPARED.items()
            }
    finally:
        engine.dispose()


def ops_command(url: str, *args: str, config: Path | None = None) -> list[str]:
    return [
        SAATHII_OPS, "--database-url", url, *(["--config", str(config)] if config else []),
        "--now", NOW.isoformat(), *args,
    ]  # fmt: skip


def ops(url: str, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ops_command(url, *args, config=config), capture_output=True, text=True, timeout=120
    )


def start(url: str, *args: str, config: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ops_command(url, *args, config=config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def blocked_backend(engine: Engine, process: subprocess.Popen[str]) -> int:
    """The pid of the run's backend once it waits for the test's lock."""
    with engine.connect() as conn:

        def waiting() -> int | None:
            assert process.poll() is None, process.communicate()
            return next((pid for pid, wait in our_backends(conn) if wait == "Lock"), None)

        pid: int = wait_until(waiting, "the run to wait for the test's lock")
    return pid


def no_backend_left(engine: Engine) -> None:
    """A killed run's backend ends when the server notices its client is gone."""
    with engine.connect() as conn:
        wait_until(lambda: not our_backends(conn), "the killed runs' backends to end")


def ledger_lock(engine: Engine) -> TableLock:
    """The run's writes to the ledger wait: mid-run, after its plan and row locks."""
    return TableLock(engine, BLOCKED_TABLE)


# --- SIGKILL at random moments --------------------------------------------------------------


@pytest.mark.parametrize("job", [["coins", "deduct"], ["calls", "cleanup"]])
def test_sigkill_at_random_moments_then_one_clean_run_equals_one_clean_run(
    data: Data, job: list[str]
) -> None:
    """Every kill lands before the run commits, so each one finds the same work: half
    while the run waits to write its ledger rows (mid-run), half at a random
    moment from its start to its last statement (the audit row, which waits for the
    test's lock on ops_job_runs: everything else is written by then)."""
    chance = random.Random(f"sigkill {job}")
    before = rows(data.url)
    for attempt in range(10):
        if attempt % 2:
            lock = ledger_lock(data.engine)
            process = start(data.url, *job)
            blocked_backend(data.engine, process)
            time.sleep(chance.uniform(0, 0.2))
        else:
            lock = TableLock(data.engine, "ops_job_runs")
            process = start(data.url, *job)
            time.sleep(chance.uniform(0.2, 3.0))
            assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGKILL)
        process.wait()
        lock.release()
        no_backend_left(data.engine)
        assert rows(data.url) == before, f"kill {attempt + 1} left changes"
    done = ops(data.url, *job)
    assert done.returncode == 0, done.stderr
    assert rows(data.url) == data.clean_run_on_a_copy(job)


# --- a backend terminated mid-run -----------------------------------------------------------


def test_a_terminated_backend_is_exit_3_and_the_next_run_catches_up(data: Data) -> None:
    before = rows(data.url)
    lock = ledger_lock(data.engine)
    process = start(data.url, "coins", "deduct")
    pid = blocked_backend(data.engine, process)
    with data.engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    _, stderr = process.communicate(timeout=60)
    lock.release()
    assert process.returncode == 3
    line = one_line(stderr)
    assert line.startswith("error: coins-deduct lost the database connection mid-run (")
    assert line.endswith("nothing applied; recorded as failed")
    assert rows(data.url) == before
    [(job, outcome, error)] = audit_rows(data.engine)
    assert (job, outcome) == ("coins-deduct", "failed")
    assert error is not None and error.startswith("lost the database connection: ")

    done = ops(data.url, "coins", "deduct")
    assert done.returncode == 0, done.stderr
    assert rows(data.url) == data.clean_run_on_a_copy(["coins", "deduct"])


# --- a run blocked by a lock -----------------------------------------------------------------


def test_a_run_blocked_by_a_lock_ends_at_its_statement_timeout(data: Data, tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text("statement_timeout_seconds = 2\n")
    before = rows(data.url)
    lock = ledger_lock(data.engine)
    started = time.monotonic()
    done = ops(data.url, "coins", "deduct", config=config)
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert elapsed < 20, elapsed  # 2 s, and the process's start
    [line] = [line for line in done.stdout.splitlines() if " error=" in line]
    assert 'canceling statement due to statement timeout" ' in line, done.stdout
    assert rows(data.url) == before
    # its job lock went with its transaction: the next run (lock released) works
    lock.release()
    again = ops(data.url, "coins", "deduct", config=config)
    assert again.returncode == 0, again.stderr
    assert [outcome for _, outcome, _ in audit_rows(data.engine)] == ["failed", "ok"]
    assert rows(data.url) == data.clean_run_on_a_copy(["coins", "deduct"])


# --- SIGTERM / SIGINT -----------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_run_rolls_back_records_failed_and_says_one_line(
    data: Data, signum: int
) -> None:
    name = signal.Signals(signum).name
    before = rows(data.url)
    lock = ledger_lock(data.engine)
    process = start(data.url, "coins", "deduct")
    blocked_backend(data.engine, process)
    started = time.monotonic()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    elapsed = time.monotonic() - started
    lock.release()
    assert process.returncode == 128 + signum
    assert elapsed < 15, elapsed  # at once, not at the 50 s statement timeout
    assert one_line(stderr) == (
        f"error: coins-deduct interrupted by {name}, nothing applied; recorded as failed"
    )
    assert rows(data.url) == before
    assert audit_rows(data.engine) == [("coins-deduct", "failed", f"interrupted by {name}")]


# --- the audit table locked while a run fails -----------------------------------------------


def test_a_run_that_fails_with_the_audit_table_locked_ends_within_its_deadline(
    data: Data, tmp_path: Path
) -> None:
    config = tmp_path / "ops.toml"
    config.write_text("statement_timeout_seconds = 60\nrun_deadline_seconds = 10\n")
    before = rows(data.url)
    with data.engine.connect() as conn:
        conn.exec_driver_sql("LOCK TABLE ops_job_runs IN EXCLUSIVE MODE")
        started = time.monotonic()
        done = ops(data.url, "coins", "deduct", config=config)
        elapsed = time.monotonic() - started
        conn.rollback()
    # the deadline counts from the run's start; the process starts a second or so before
    assert elapsed < 10 + 5, elapsed
    assert done.returncode == 1, done.stderr
    assert 'error="stopped at its deadline of 10 s (run_deadline_seconds): rolled back"' in (
        done.stdout
    )
    assert "could not record the failed run of coins-deduct" in done.stderr
    assert rows(data.url) == before
