"""Two runs of the installed cron line at once (SPEC §9, §10): the job's own lock keeps them
apart and records the second as skipped — nothing in the line (no `flock -n`) stops it
before saathii-ops starts.

Real subprocesses run the installed coins-deduct line through `sh -c`, as cron does. The
run that takes the lock is kept running long enough for the other to find it taken:
on PostgreSQL the test holds a row lock the run needs; on SQLite it holds the database's
write lock until both processes have the database open and one holds the job lock (a
file), and the run bills enough calls to outlast the other's last step to that lock.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db import tables
from saathii_ops.db.tables import ops_job_runs, user_calls, user_transactions, user_wallets
from tests.conftest import Cli
from tests.support.installed import SAATHII_OPS

WAIT = 60.0  # seconds: a bound on waiting for a process, never reached when it works


def add_ongoing_calls(engine: Engine, count: int) -> int:
    """`count` audio calls started 5 minutes ago (each caller can pay); the first caller."""
    started = datetime.now(UTC) - timedelta(minutes=5)
    with engine.begin() as conn:
        users = [
            {"username": f"o{i:07d}", "dob": date(1990, 1, 1), "phone": f"+91{i:010d}"}
            for i in range(2 * count)
        ]
        ids = list(
            conn.execute(sa.insert(tables.users).returning(tables.users.c.user_id), users).scalars()
        )
        callers, listeners = ids[:count], ids[count:]
        conn.execute(
            sa.insert(user_wallets),
            [{"user_id": c, "balance_coins": 1000, "withdrawable_money": 0} for c in callers],
        )
        wallet_ids = conn.execute(sa.select(user_wallets.c.wallet_id)).scalars().all()
        conn.execute(
            sa.insert(user_transactions),
            [{"wallet_id": w, "tx_type": "purchase", "coins_change": 1000} for w in wallet_ids],
        )
        conn.execute(
            sa.insert(user_calls),
            [
                {
                    "user_id": c,
                    "listener_id": listener,
                    "call_type": "audio",
                    "start_time": started,
                    "coins_spent": 10,
                    "status": "ongoing",
                }
                for c, listener in zip(callers, listeners, strict=True)
            ],
        )
    return callers[0]


def installed_coins_deduct_line(tmp_path: Path, db_url: str) -> tuple[str, Path]:
    """`cron install` into a file with a config file naming the database; the shell command
    of the coins-deduct line as cron runs it (`\\%` unescaped), and the log directory."""
    config, crontab, log_dir = tmp_path / "ops.toml", tmp_path / "crontab", tmp_path / "logs"
    config.write_text(f'database_url = "{db_url}"\n')
    result = Cli(None)(
        "--config",
        str(config),
        "cron",
        "install",
        "--file",
        str(crontab),
        "--log-dir",
        str(log_dir),
        "--executable",
        SAATHII_OPS,
        "--server-timezone",
        "UTC",
    )
    assert result.exit_code == 0, result.stderr
    line = next(line for line in crontab.read_text().splitlines() if line.startswith("* * * * * "))
    return line.split(" ", 5)[5].replace("\\%", "%"), log_dir


def start_twice(command: str, tmp_path: Path) -> list[subprocess.Popen[bytes]]:
    environment = {"HOME": str(tmp_path)}  # cron's environment is nearly empty
    return [subprocess.Popen(["/bin/sh", "-c", command], env=environment) for _ in range(2)]


def first_to_exit(processes: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        done = [p for p in processes if p.poll() is not None]
        if done:
            return done[0]
        time.sleep(0.05)
    raise AssertionError("neither run ended")


def pids_with_file_open(path: Path) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if any(os.readlink(fd) == str(path) for fd in (entry / "fd").iterdir()):
                found.add(int(entry.name))
        except OSError:
            continue  # gone, or not ours to look at
    return found


def job_lock_taken(database: Path) -> bool:
    """The runner's SQLite lock file of coins-deduct is held by some process."""
    with Path(f"{database}.coins-deduct.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def recorded_runs(engine: Engine) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ops_job_runs.c.outcome, ops_job_runs.c.reason).order_by(
                ops_job_runs.c.outcome
            )
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_two_runs_of_the_installed_line_leave_one_ok_and_one_skipped_row(
    backend: str, db_url: str, engine: Engine, tmp_path: Path
) -> None:
    add_ongoing_calls(engine, 1 if backend == "postgresql" else 500)
    command, log_dir = installed_coins_deduct_line(tmp_path, db_url)
    assert "flock" not in command

    holder = engine.connect()
    if backend == "postgresql":
        # the run that takes the job lock waits to write its ledger row (a held row would
        # not make it wait: it would leave that row for the next run); the other finds
        # the job lock taken
        holder.execute(sa.text("LOCK TABLE user_transactions IN EXCLUSIVE MODE"))
        processes = start_twice(command, tmp_path)
        skipped = first_to_exit(processes)
        (running,) = [p for p in processes if p is not skipped]
        assert running.poll() is None, "the run holding the lock ended without its ledger row"
        holder.rollback()
    else:
        holder.execute(sa.text("SELECT 1"))  # BEGIN IMMEDIATE: the database's write lock
        database = Path(sa.make_url(db_url).database or "")
        processes = start_twice(command, tmp_path)
        # both started; one holds the job lock and waits for the write lock
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not (
            len(pids_with_file_open(database)) == 2 and job_lock_taken(database)
        ):
            time.sleep(0.05)
        holder.rollback()
    holder.close()
    for process in processes:
        assert process.wait(timeout=WAIT) == 0

    assert recorded_runs(engine) == [("ok", None), ("skipped", "locked")]
    log = (log_dir / "coins-deduct.log").read_text()
    assert log.count("job=coins-deduct outcome=ok ") == 1
    assert log.count("job=coins-deduct outcome=skipped ") == 1
