"""A run whose database goes away mid-run (a restart, a failover) is recorded when the
database answers again (SPEC §9). On PostgreSQL, with a real `saathii-ops`
process: the run waits for a lock the test holds on ops_job_controls (its pause check);
the test then shuts the database to new connections (ALLOW_CONNECTIONS false, the shared
server is never restarted) and terminates the run's backend, so that its failure record
cannot be written then. Marked `faults`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import parse_url
from tests.conftest import Databases
from tests.support.faults import (
    NOW,
    audit_rows,
    fault_engine,
    one_line,
    our_backends,
    wait_until,
)
from tests.support.installed import SAATHII_OPS

pytestmark = pytest.mark.faults


def _admin(databases: Databases) -> Engine:
    from tests.conftest import POSTGRES_ADMIN_URL

    assert POSTGRES_ADMIN_URL
    return sa.create_engine(parse_url(POSTGRES_ADMIN_URL), isolation_level="AUTOCOMMIT")


def _run(url: str, data_home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SAATHII_OPS, "--database-url", url, "--now", NOW.isoformat(), "coins", "deduct"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "XDG_DATA_HOME": str(data_home)},
    )


def test_a_run_that_lost_its_database_is_recorded_by_the_next_run(
    databases: Databases, tmp_path: Path
) -> None:
    if databases.backend != "postgresql":
        pytest.skip("the fault suite runs on PostgreSQL")
    url = databases.migrated()
    name = sa.make_url(url).database
    engine = fault_engine(url)
    admin = _admin(databases)
    blocker = engine.connect()
    blocker.exec_driver_sql("LOCK TABLE ops_job_controls IN ACCESS EXCLUSIVE MODE")
    process = _run(url, tmp_path)
    try:
        with engine.connect() as conn:
            wait_until(
                lambda: any(wait == "Lock" for _, wait in our_backends(conn)),
                "the run to wait for the lock",
            )
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND application_name = 'saathii-ops'"
            )
        _, stderr = process.communicate(timeout=60)
    finally:
        blocker.rollback()
        blocker.close()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.dispose()
    assert process.returncode == 3
    line = one_line(stderr)
    assert line.startswith("error: coins-deduct lost the database connection mid-run (")
    assert line.endswith(
        "the server rolled it back, nothing applied; not recorded yet: kept on this host, "
        "the next run records it"
    )
    assert audit_rows(engine) == []

    # the database answers again: the next run records the lost one first, once
    for _ in range(2):
        again = _run(url, tmp_path)
        _, stderr = again.communicate(timeout=60)
        assert again.returncode == 0, stderr
    rows = audit_rows(engine)
    assert [(job, outcome) for job, outcome, _ in rows] == [
        ("coins-deduct", "failed"),
        ("coins-deduct", "ok"),
        ("coins-deduct", "ok"),
    ]
    error = rows[0][2]
    assert error is not None and error.startswith("lost the database connection: ")
    engine.dispose()
