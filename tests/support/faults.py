"""The fault suites' tools (PostgreSQL, real `saathii-ops` processes): the test's own
connections, saathii-ops's backends, waiting for a state, a table the test holds locked."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from saathii_ops.db.engine import parse_url

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


def fault_engine(url: str) -> Engine:
    """The test's own connections, which `our_backends` must not count."""
    return sa.create_engine(parse_url(url), connect_args={"application_name": "fault-suite"})


def our_backends(conn: Connection) -> list[tuple[int, str | None]]:
    """(pid, wait_event_type) of saathii-ops's backends on this database."""
    found = conn.exec_driver_sql(
        "SELECT pid, wait_event_type FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = 'saathii-ops' "
        "AND pid <> pg_backend_pid()"
    ).all()
    conn.rollback()  # pg_stat_activity is a snapshot per transaction
    return [(r[0], r[1]) for r in found]


def wait_until(condition: Any, what: str, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"waited {seconds} s for {what}")


class TableLock:
    """The test holds a table locked in `mode`, in an open transaction, until released."""

    def __init__(self, engine: Engine, table: str, mode: str = "EXCLUSIVE") -> None:
        self.conn = engine.connect()
        self.conn.exec_driver_sql(f"LOCK TABLE {table} IN {mode} MODE")

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def audit_rows(engine: Engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as conn:
        return [
            (r[0], r[1], r[2])
            for r in conn.exec_driver_sql(
                "SELECT job, outcome, error FROM ops_job_runs ORDER BY run_id"
            )
        ]
