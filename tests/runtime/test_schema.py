"""Migrations and adoption of the app's live database (SPEC §1)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from saathii_ops.db import schema
from saathii_ops.db.engine import make_engine, parse_url
from saathii_ops.db.tables import APP_TABLES
from tests.conftest import Cli
from tests.support.schema import create_app_tables, table_names

APP_TABLE_NAMES = sorted(app_table.name for app_table in APP_TABLES)
OWN_TABLES = [
    "alembic_version",
    "ops_corrections",
    "ops_half_ended_calls",
    "ops_job_controls",
    "ops_job_runs",
    "ops_settlements",
]


def test_upgrade_on_an_empty_database_creates_everything(empty_db_url: str) -> None:
    cli = Cli(empty_db_url)
    result = cli("--json", "db", "upgrade")
    assert result.exit_code == 0, result.stderr
    assert '"after": "0005"' in result.stdout
    assert table_names(empty_db_url) == sorted(APP_TABLE_NAMES + OWN_TABLES)
    current = cli("db", "current")
    assert current.exit_code == 0
    assert "current: 0005" in current.stdout


def test_current_on_an_empty_database_is_exit_3(empty_db_url: str) -> None:
    result = Cli(empty_db_url)("db", "current")
    assert result.exit_code == 3
    assert "current: -" in result.stdout


def test_upgrade_refuses_an_unadopted_app_database(empty_db_url: str, backend: str) -> None:
    create_app_tables(empty_db_url, backend)
    cli = Cli(empty_db_url)

    refused = cli("db", "upgrade")
    assert refused.exit_code == 3
    assert refused.stderr.startswith("error: this database already holds the app's tables")
    assert "run `saathii-ops db adopt` first" in refused.stderr
    assert table_names(empty_db_url) == APP_TABLE_NAMES

    job = cli("presence", "cleanup")
    assert job.exit_code == 3
    assert "never adopted: run `saathii-ops db adopt`" in job.stderr


def test_adopt_then_upgrade_adds_only_the_projects_objects(empty_db_url: str, backend: str) -> None:
    create_app_tables(empty_db_url, backend)
    cli = Cli(empty_db_url)

    adopted = cli("db", "adopt")
    assert adopted.exit_code == 0, adopted.stderr
    assert "adopted_revision: 0001" in adopted.stdout
    assert table_names(empty_db_url) == sorted([*APP_TABLE_NAMES, "alembic_version"])

    upgraded = cli("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.stderr
    assert table_names(empty_db_url) == sorted(APP_TABLE_NAMES + OWN_TABLES)

    engine = make_engine(parse_url(empty_db_url))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT username, phone FROM users")).all() == [
            ("asha", "+911")
        ]
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("user_calls")}
    engine.dispose()
    assert {"ix_user_calls_ongoing", "ix_user_calls_start_time", "idx_calls_user"} <= indexes

    again = cli("db", "adopt")
    assert again.exit_code == 0
    assert "already_adopted: yes" in again.stdout
    assert cli("presence", "cleanup").exit_code == 0


def test_adopt_names_what_is_missing(empty_db_url: str, backend: str) -> None:
    create_app_tables(empty_db_url, backend)
    engine = make_engine(parse_url(empty_db_url))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE listener_badges")
        conn.exec_driver_sql("ALTER TABLE user_status DROP COLUMN wait_time")
    engine.dispose()

    result = Cli(empty_db_url)("db", "adopt")
    assert result.exit_code == 3
    assert result.stderr == (
        "error: cannot adopt: the app's schema differs, missing "
        "user_status.wait_time, listener_badges\n"
    )
    assert "alembic_version" not in table_names(empty_db_url)


def test_adopt_names_columns_of_another_type(empty_db_url: str, backend: str) -> None:
    create_app_tables(empty_db_url, backend)
    engine = make_engine(parse_url(empty_db_url))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE listener_badges")
        conn.exec_driver_sql(
            "CREATE TABLE listener_badges (listener_id INTEGER, date DATE, badge VARCHAR(20), "
            "audio_rate_per_minute NUMERIC(6, 2), video_rate_per_minute NUMERIC(5, 2), "
            "assigned_at TIMESTAMP WITH TIME ZONE, updated_at TIMESTAMP WITH TIME ZONE, "
            "created_at TIMESTAMP WITH TIME ZONE, PRIMARY KEY (listener_id, date))"
            if backend == "postgresql"
            else "CREATE TABLE listener_badges (listener_id INTEGER, date DATE, "
            "badge VARCHAR(20), audio_rate_per_minute NUMERIC(6, 2), "
            "video_rate_per_minute NUMERIC(5, 2), assigned_at DATETIME, updated_at DATETIME, "
            "created_at DATETIME, PRIMARY KEY (listener_id, date))"
        )
        if backend == "postgresql":
            conn.exec_driver_sql(
                "ALTER TABLE user_wallets ALTER COLUMN balance_coins TYPE numeric(20,4)"
            )
    engine.dispose()

    result = Cli(empty_db_url)("db", "adopt")
    assert result.exit_code == 3
    wallets = (
        "user_wallets.balance_coins is NUMERIC(20, 4), expected BIGINT; "
        if backend == "postgresql"
        else ""
    )
    assert result.stderr == (
        "error: cannot adopt: the app's schema differs, different types: "
        f"{wallets}listener_badges.audio_rate_per_minute is NUMERIC(6, 2), "
        "expected NUMERIC(5, 2)\n"
    )
    assert "alembic_version" not in table_names(empty_db_url)


COLUMNS_SQL = """
SELECT table_name, column_name, data_type, character_maximum_length, numeric_precision,
       numeric_scale, is_nullable, column_default
FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = ANY(:tables)
ORDER BY table_name, ordinal_position
"""
CONSTRAINTS_SQL = """
SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
FROM pg_constraint
WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text = ANY(:tables)
ORDER BY 1, 2
"""
INDEXES_SQL = """
SELECT tablename, indexname, indexdef FROM pg_indexes
WHERE schemaname = 'public' AND tablename = ANY(:tables) ORDER BY 1, 2
"""


def test_the_first_migration_is_exactly_the_apps_schema(databases, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("compares PostgreSQL catalogs")
    by_app, by_migration = databases.empty(), databases.empty()
    try:
        create_app_tables(by_app, backend)
        engine = make_engine(parse_url(by_migration))
        from saathii_ops.db import schema

        with engine.begin() as conn:
            from alembic import command

            command.upgrade(schema._config(conn), "0001")
        engine.dispose()

        def catalog(url: str) -> list[list[tuple[object, ...]]]:
            engine = make_engine(parse_url(url))
            with engine.connect() as conn:
                found = [
                    [tuple(row) for row in conn.execute(sa.text(sql), {"tables": APP_TABLE_NAMES})]
                    for sql in (COLUMNS_SQL, CONSTRAINTS_SQL, INDEXES_SQL)
                ]
            engine.dispose()
            return found

        expected = catalog(by_app)
        assert [len(part) for part in expected] == [58, 23, 12]
        assert catalog(by_migration) == expected
    finally:
        databases.drop(by_app)
        databases.drop(by_migration)


def test_a_schema_newer_than_this_code_says_so_instead_of_upgrading(db_url: str) -> None:
    engine = make_engine(parse_url(db_url))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    engine.dispose()
    cli = Cli(db_url)
    message = (
        "error: the schema is at revision 0099, which this version of saathii-ops "
        "does not know (a newer version migrated it): install that version\n"
    )
    for command in (("presence", "cleanup"), ("db", "upgrade")):
        result = cli(*command)
        assert result.exit_code == 3
        assert result.stderr == message


def test_the_packages_revisions_are_alembics() -> None:
    """A job run checks the schema against schema.REVISIONS without reading the migration
    scripts: the list must be what Alembic computes from them, oldest first."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(schema._config())
    walked = [script.revision for script in scripts.walk_revisions()]
    assert tuple(reversed(walked)) == schema.REVISIONS
    assert scripts.get_heads() == [schema.HEAD_REVISION]
    assert scripts.get_base() == schema.APP_SCHEMA_REVISION


def test_a_job_on_an_older_revision_is_told_to_upgrade(db_url: str) -> None:
    older, head = schema.REVISIONS[-2:]  # head: Alembic's (test above)
    engine = make_engine(parse_url(db_url))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :older"), {"older": older})
    engine.dispose()
    result = Cli(db_url)("coins", "deduct")
    assert (result.exit_code, result.stderr) == (
        3,
        f"error: the schema is at revision {older}, this version needs {head}: "
        "run `saathii-ops db upgrade`\n",
    )


def test_a_version_table_with_two_revisions_is_named_not_taken_for_a_newer_version(
    db_url: str,
) -> None:
    """Alembic itself raised on such a table; the job's own check names it, exit 3."""
    older, head = schema.REVISIONS[-2:]
    engine = make_engine(parse_url(db_url))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO alembic_version VALUES (:older)"), {"older": older})
    engine.dispose()
    result = Cli(db_url)("coins", "deduct")
    assert (result.exit_code, result.stderr) == (
        3,
        f"error: alembic_version holds several revisions ({older}, {head}) where these "
        "migrations keep one: leave only the revision the schema is at\n",
    )
