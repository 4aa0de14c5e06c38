"""`db upgrade` under faults, on PostgreSQL, with real `saathii-ops` processes:
its backend terminated (as by a server restart), SIGTERM / SIGINT, and two upgrades at
once. Each ends in one true line and its exit code, the schema at the revision the line
names, and the next `db upgrade` finishes the job.

The upgrade is held at a known point: the test holds a SHARE UPDATE EXCLUSIVE lock on
user_calls, which revision 0002's first CREATE INDEX CONCURRENTLY waits for (after 0001,
the adopted app schema, is committed). Marked `faults` (slow, real processes)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from saathii_ops.db import schema
from tests.support.faults import (
    TableLock,
    fault_engine,
    one_line,
    our_backends,
    wait_until,
)
from tests.support.installed import SAATHII_OPS
from tests.support.schema import OWN_INDEXES, adopted, everything, index_state

pytestmark = pytest.mark.faults

AGAIN = "`saathii-ops db upgrade` continues from there"


@pytest.fixture
def url(empty_db_url: str, backend: str) -> str:
    if backend != "postgresql":
        pytest.skip("the fault suite runs on PostgreSQL")
    return adopted(empty_db_url, backend)  # at 0001


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    engine = fault_engine(url)
    yield engine
    engine.dispose()


def start_upgrade(url: str, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SAATHII_OPS, "--database-url", url, *options, "db", "upgrade"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def blocked_upgrade(conn: Connection, *processes: subprocess.Popen[str]) -> int:
    """The pid of the upgrade backend that waits for the test's table lock."""

    def waiting() -> int | None:
        for process in processes:
            assert process.poll() is None, process.communicate()
        return next((pid for pid, wait in our_backends(conn) if wait == "Lock"), None)

    pid: int = wait_until(waiting, "the upgrade to wait for the table lock")
    return pid


def revision(url: str) -> str | None:
    found = everything(url)["revision"]
    assert found is None or isinstance(found, str)
    return found


def finishes_on_a_second_run(url: str, engine: Engine) -> None:
    again = subprocess.run(
        [SAATHII_OPS, "--database-url", url, "db", "upgrade"], capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    assert revision(url) == schema.HEAD_REVISION
    for name in OWN_INDEXES:
        assert index_state(engine, name) == (True, False), name


def test_an_upgrade_whose_backends_are_terminated_is_exit_3_with_the_revision_it_left(
    url: str, engine: Engine
) -> None:
    """Every backend of the upgrade terminated at once (its advisory lock's too): what a
    server restart does to it."""
    lock = TableLock(engine, "user_calls", "SHARE UPDATE EXCLUSIVE")
    process = start_upgrade(url)
    with engine.connect() as conn:
        blocked_upgrade(conn, process)
        conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'saathii-ops'"
        )
    _, stderr = process.communicate(timeout=60)
    lock.release()
    assert process.returncode == 3, stderr
    line = one_line(stderr)
    assert line.startswith("error: db upgrade lost the database connection (")
    assert line.endswith(f"): the schema is at revision 0001; {AGAIN}")
    assert revision(url) == "0001"
    finishes_on_a_second_run(url, engine)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_an_upgrade_with_one_line_and_its_exit_code(
    url: str, engine: Engine, signum: int
) -> None:
    lock = TableLock(engine, "user_calls", "SHARE UPDATE EXCLUSIVE")
    process = start_upgrade(url)
    with engine.connect() as conn:
        blocked_upgrade(conn, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    lock.release()
    assert process.returncode == 128 + signum
    assert one_line(stderr) == (
        f"error: db upgrade interrupted by {signal.Signals(signum).name}: stopped, the "
        f"schema is at revision 0001; {AGAIN}"
    )
    assert revision(url) == "0001"
    # the cancelled build left an INVALID index: the next upgrade builds it again
    assert index_state(engine, "ix_user_calls_ongoing") in (None, (False, False))
    finishes_on_a_second_run(url, engine)


def test_two_upgrades_at_once_both_finish_and_say_what_they_did(url: str, engine: Engine) -> None:
    head = schema.HEAD_REVISION
    lock = TableLock(engine, "user_calls", "SHARE UPDATE EXCLUSIVE")
    first = start_upgrade(url, "--json")
    with engine.connect() as conn:
        blocked_upgrade(conn, first)
        connected = len(our_backends(conn))
        second = start_upgrade(url, "--json")
        # the second connects, then waits for the first's advisory lock, holding no
        # snapshot (which the first's concurrent index builds would wait for)
        wait_until(
            lambda: len(our_backends(conn)) > connected or None, "the second upgrade to connect"
        )
        time.sleep(1)  # and gets as far as it goes while the first is held
    lock.release()
    outputs = [process.communicate(timeout=120) for process in (first, second)]
    for process, (_stdout, stderr) in zip((first, second), outputs, strict=True):
        assert process.returncode == 0, stderr
        assert stderr == ""
    reports = [json.loads(stdout) for stdout, _ in outputs]
    assert [(r["before"], r["after"]) for r in reports] == [("0001", head), (head, head)]
    assert revision(url) == head
    with engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar_one()
    assert versions == 1
