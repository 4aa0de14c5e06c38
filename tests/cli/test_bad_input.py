"""Bad input a person can cause: one clear line, the SPEC's exit code, no password shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.conftest import Cli


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "not a url",
            "error: invalid database URL: it does not parse "
            "(the rest is not shown: it may hold a password)\n",
        ),
        (
            "mysql://root:hunter2@localhost/app",
            "error: unsupported database 'mysql': use a postgresql:// or sqlite:// URL\n",
        ),
    ],
)
def test_a_bad_database_url_is_exit_2(url: str, message: str) -> None:
    result = Cli(url)("presence", "cleanup")
    assert result.exit_code == 2
    assert result.stderr == message


def test_an_unreachable_server_is_exit_3_without_the_password() -> None:
    result = Cli("postgresql://ops:s3cret@127.0.0.1:1/saathii")("presence", "cleanup")
    assert result.exit_code == 3
    assert result.stderr.startswith(
        "error: cannot reach the database at postgresql+psycopg2://ops:***@127.0.0.1:1/saathii: "
    )
    assert result.stderr.count("\n") == 1
    assert "s3cret" not in result.stderr + result.stdout


def test_the_password_is_hidden_even_in_a_url_that_does_not_parse() -> None:
    result = Cli("postgresql://ops:s3cret@host:notaport/db")("presence", "cleanup")
    assert result.exit_code == 2
    assert "s3cret" not in result.stderr
    # which part of a URL that does not parse is its password cannot be known: only the
    # scheme is shown
    assert result.stderr == (
        "error: invalid database URL (postgresql://…): it does not parse "
        "(the rest is not shown: it may hold a password)\n"
    )


def test_a_database_without_schema_is_exit_3(empty_db_url: str) -> None:
    result = Cli(empty_db_url)("presence", "cleanup")
    assert result.exit_code == 3
    assert result.stderr == "error: the database has no schema yet: run `saathii-ops db upgrade`\n"


def test_a_missing_sqlite_directory_is_created_not_a_traceback(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'deep' / 'er' / 'ops.db'}"
    assert Cli(url)("db", "upgrade").exit_code == 0


# --- every failure a person can cause: one line, the SPEC's exit code ---------------

OUT_OF_RANGE_NOW = ["0001-01-01T00:00:00+05:30", "9999-12-31T23:59:59-05:00", "1969-12-31"]


@pytest.mark.parametrize("now", OUT_OF_RANGE_NOW)
@pytest.mark.parametrize(
    "command",
    [
        ["coins", "deduct"],
        ["calls", "cleanup"],
        ["status"],
        ["badges", "assign"],
        ["badges", "show"],
    ],
)
def test_a_now_out_of_range_is_exit_2(db_url: str, now: str, command: list[str]) -> None:
    result = Cli(db_url)("--now", now, *command)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"error: Invalid value: --now {now} is out of range: give an instant from 1970-01-01 "
        "to 9998-12-31 (UTC) (try '"
    )
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--from", "0001-01-01", "--to", "9999-12-31"],
            "--from 0001-01-01 is out of range: give a date from 1970-01-02 to 9998-12-31",
        ),
        (
            ["--date", "9999-12-31"],
            "--date 9999-12-31 is out of range: give a date from 1970-01-02 to 9998-12-31",
        ),
        (
            ["--from", "2025-01-01", "--to", "2026-01-02"],
            "--from 2025-01-01 --to 2026-01-02 is 367 days; one run backfills at most 366: "
            "run it once for each stretch of up to 366 days",
        ),
    ],
)
def test_badge_dates_out_of_range_and_too_long_a_backfill_are_exit_2(
    db_url: str, options: list[str], message: str
) -> None:
    result = Cli(db_url)("badges", "assign", *options)
    assert result.exit_code == 2
    assert result.stderr == f"error: {message}\n"


def test_an_sqlite_file_that_is_not_a_database_is_exit_3(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not a database\n")
    for command in (["coins", "deduct"], ["status"], ["db", "upgrade"], ["db", "adopt"]):
        result = Cli(f"sqlite:///{path}")(*command)
        assert result.exit_code == 3, (command, result)
        assert result.stderr == (
            f"error: cannot reach the database at sqlite:///{path}: file is not a database\n"
        )


def test_an_sqlite_path_that_cannot_exist_is_exit_3() -> None:
    result = Cli("sqlite:////etc/passwd/x.db")("coins", "deduct")
    assert result.exit_code == 3
    assert (
        result.stderr
        == "error: cannot create the SQLite database /etc/passwd/x.db: Not a directory\n"
    )


def test_db_upgrade_over_a_table_of_a_later_revision_is_exit_3(db_url: str, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    result = Cli(db_url)("db", "upgrade")
    assert result.exit_code == 3
    assert result.stderr.startswith(
        "error: db upgrade failed, the schema is still at revision 0001: "
    )
    # 0002 builds its indexes first: the first object there already is one of them
    assert "already exists" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_dropped_app_table_is_named_by_status_and_stops_the_jobs(
    db_url: str, engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE listener_badges"))
    missing = (
        "the app's tables listener_badges are missing (saathii-ops never drops them): "
        "restore them from the app's backup"
    )
    status = Cli(db_url)("--json", "status")
    assert status.exit_code == 1
    assert json.loads(status.stdout)["problems"] == [
        f"{missing} (jobs and data not read until then)"
    ]
    deduct = Cli(db_url)("coins", "deduct")
    assert (deduct.exit_code, deduct.stderr) == (3, f"error: {missing}\n")


def test_a_dropped_app_column_is_exit_3(db_url: str, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DROP INDEX ix_user_status_busy"))
        conn.execute(sa.text("ALTER TABLE user_status DROP COLUMN wait_time"))
    result = Cli(db_url)("presence", "cleanup")
    assert result.exit_code == 3
    assert result.stderr.startswith("error: the database's schema is not the app's (")
    assert result.stderr.endswith("): `saathii-ops db adopt` lists what differs\n")
    assert "wait_time" in result.stderr


def test_a_read_only_database_is_exit_3_in_one_line(db_url: str, engine: Engine) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("default_transaction_read_only is PostgreSQL's")
    name = sa.make_url(db_url).database
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    engine.dispose()
    for command in (["coins", "deduct"], ["presence", "cleanup"], ["jobs", "pause", "logs-prune"]):
        result = Cli(db_url)(*command)
        assert result.exit_code == 3, (command, result)
        assert result.stderr.startswith("error: the database is read-only ("), result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr and "parameters" not in result.stderr


def test_an_unexpected_error_is_one_line_without_the_statement_or_its_parameters(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise sa.exc.IntegrityError(
            "INSERT INTO t VALUES (%(secret_value)s)", {"secret_value": "4111"}, Exception("bad")
        )

    monkeypatch.setattr("saathii_ops.jobs.job_control.list_jobs", broken)
    result = Cli(db_url)("jobs", "list")
    assert result.exit_code == 1
    assert result.stderr == "error: unexpected IntegrityError: bad (-v shows the traceback)\n"
    verbose = Cli(db_url)("-v", "jobs", "list")
    assert "Traceback" in verbose.stderr and "4111" in verbose.stderr
