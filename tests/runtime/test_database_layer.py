"""The database layer: read-only transactions and the SQL time helpers on both dialects."""

from __future__ import annotations

import os
import stat
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from saathii_ops.db.engine import transaction
from saathii_ops.db.sql import elapsed_seconds, local_date
from saathii_ops.db.tables import user_calls, users
from saathii_ops.settings import embedded_database_path
from tests.conftest import Cli
from tests.factories import add_call, add_user

START = datetime(2026, 11, 28, 18, 29, 59, 500000, tzinfo=UTC)  # 23:59:59.5 IST


def test_a_write_in_a_read_only_transaction_fails_loudly(engine: Engine) -> None:
    with transaction(engine, read_only=True) as s, pytest.raises(DBAPIError):
        add_user(s)


def test_a_write_transaction_after_a_read_only_one_can_write(engine: Engine) -> None:
    """The pooled connection a read-only transaction used is read-only no more."""
    with transaction(engine, read_only=True) as s:
        s.execute(sa.text("SELECT 1"))
    with transaction(engine) as s:
        user = add_user(s)
        s.commit()
    with transaction(engine, read_only=True) as s:
        assert s.scalars(sa.select(users.c.user_id)).all() == [user]


@pytest.mark.parametrize(
    ("offset", "seconds"),
    [
        (timedelta(0), 0),
        (timedelta(seconds=59, microseconds=999999), 59),
        (timedelta(seconds=60), 60),
        (timedelta(minutes=7, seconds=1, microseconds=1), 421),
        (timedelta(days=1, seconds=3), 86403),
        (-timedelta(microseconds=1), -1),
        (-timedelta(seconds=90), -90),
    ],
)
def test_elapsed_seconds_rounds_down_exactly(
    engine: Engine, offset: timedelta, seconds: int
) -> None:
    with transaction(engine) as s:
        call = add_call(s, add_user(s), add_user(s, role="listener"), start=START)
        value = s.scalar(
            sa.select(elapsed_seconds(START + offset, user_calls.c.start_time)).where(
                user_calls.c.call_id == call
            )
        )
    assert value == seconds


@pytest.mark.parametrize(
    ("moment", "tz", "expected"),
    [
        (START, "Asia/Kolkata", date(2026, 11, 28)),  # 23:59:59.5 IST
        (START + timedelta(seconds=1), "Asia/Kolkata", date(2026, 11, 29)),  # 00:00:00.5 IST
        (START, "UTC", date(2026, 11, 28)),
        (datetime(2026, 7, 1, 3, 30, tzinfo=UTC), "America/New_York", date(2026, 6, 30)),
    ],
)
def test_local_date_is_the_calendar_date_in_the_zone(
    engine: Engine, moment: datetime, tz: str, expected: date
) -> None:
    with transaction(engine) as s:
        call = add_call(s, add_user(s), add_user(s, role="listener"), start=moment)
        value = s.scalar(
            sa.select(local_date(user_calls.c.start_time, tz)).where(user_calls.c.call_id == call)
        )
    assert value == expected


def test_the_embedded_database_and_its_lock_files_are_private(tmp_path: Path) -> None:
    """0600 files in a 0700 directory: the database holds wallets and calls."""
    old_umask = os.umask(0o022)
    try:
        cli = Cli(None)
        assert cli("db", "upgrade").exit_code == 0
        assert cli("presence", "cleanup").exit_code == 0
    finally:
        os.umask(old_umask)
    database = embedded_database_path()
    assert database.parent == tmp_path / "xdg-data" / "saathii-ops"
    assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700
    files = sorted(database.parent.iterdir())
    assert database in files and any(f.name.endswith(".lock") for f in files)
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
