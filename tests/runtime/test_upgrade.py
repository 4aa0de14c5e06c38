"""`db upgrade` on the app's live database: the indexes on the app's busy tables
built CONCURRENTLY on PostgreSQL, a re-run after an interrupted build, and `db upgrade --sql`
(Alembic's offline mode), which prints the SQL and changes nothing."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import sqlalchemy as sa

from saathii_ops.db import schema
from saathii_ops.db.engine import make_engine, parse_url
from tests.conftest import Cli
from tests.support.schema import OWN_INDEXES, adopted, create_app_tables, everything, index_state


def test_sql_on_an_empty_database_prints_every_revision_and_changes_nothing(
    empty_db_url: str, backend: str
) -> None:
    before = everything(empty_db_url)
    result = Cli(empty_db_url)("db", "upgrade", "--sql")
    assert result.exit_code == 0, result.stderr
    sql = result.stdout
    assert "CREATE TABLE alembic_version" in sql
    assert "CREATE TABLE users (" in sql and "CREATE TABLE ops_job_runs (" in sql
    assert "INSERT INTO alembic_version (version_num) VALUES ('0001')" in sql
    assert "UPDATE alembic_version SET version_num='0002'" in sql
    create = "CREATE INDEX CONCURRENTLY" if backend == "postgresql" else "CREATE INDEX"
    for name in OWN_INDEXES:
        assert f"{create} {name} ON " in sql
    assert everything(empty_db_url) == before == {"tables": [], "indexes": {}, "revision": None}


def test_sql_on_the_apps_adopted_database_prints_only_what_is_missing(
    empty_db_url: str, backend: str
) -> None:
    url = adopted(empty_db_url, backend)
    before = everything(url)
    result = Cli(url)("--json", "db", "upgrade", "--sql")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["before"], document["after"]) == ("0001", schema.HEAD_REVISION)
    sql = document["sql"]
    assert "CREATE TABLE users" not in sql and "INSERT INTO alembic_version" not in sql
    assert "-- Running upgrade 0001 -> 0002" in sql
    assert "CREATE TABLE ops_job_runs (" in sql
    assert everything(url) == before
    assert before["revision"] == "0001"
    assert not any(name in before["indexes"].get("user_calls", []) for name in OWN_INDEXES)

    if backend == "postgresql":
        # a DBA runs the script with psql (the concurrent builds outside its transactions)
        dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(False)
        subprocess.run(
            ["psql", "-v", "ON_ERROR_STOP=1", "-q", dsn], input=sql, text=True, check=True
        )
        assert everything(url)["revision"] == schema.HEAD_REVISION
        assert Cli(url)("db", "current").exit_code == 0


def test_sql_at_head_has_nothing_to_run(db_url: str) -> None:
    result = Cli(db_url)("db", "upgrade", "--sql")
    assert result.exit_code == 0
    assert result.stdout == f"-- already at revision {schema.HEAD_REVISION}: nothing to run\n"


def test_sql_refuses_an_unadopted_app_database_like_upgrade(
    empty_db_url: str, backend: str
) -> None:
    create_app_tables(empty_db_url, backend)
    result = Cli(empty_db_url)("db", "upgrade", "--sql")
    assert result.exit_code == 3
    assert "run `saathii-ops db adopt` first" in result.stderr
    assert result.stdout == ""


def test_postgresql_builds_the_indexes_on_the_apps_tables_concurrently(
    empty_db_url: str, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL only")
    url = adopted(empty_db_url, backend)
    engine = make_engine(parse_url(url))
    statements: list[tuple[str, bool]] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "INDEX" in statement:
            in_transaction = conn.connection.dbapi_connection.autocommit is False
            statements.append((" ".join(statement.split()[:5]), in_transaction))

    sa.event.listen(engine, "before_cursor_execute", record)
    schema.upgrade(engine)
    for name in OWN_INDEXES:
        assert (f"CREATE INDEX CONCURRENTLY {name} ON", False) in statements
        assert index_state(engine, name) == (True, False)
    engine.dispose()


def test_an_upgrade_interrupted_while_building_an_index_can_be_run_again(
    empty_db_url: str, backend: str
) -> None:
    """An interrupted CREATE INDEX CONCURRENTLY leaves an INVALID index (made here by a
    concurrent unique build that fails on duplicates); another index was already built."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL only")
    url = adopted(empty_db_url, backend)
    engine = make_engine(parse_url(url))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(
            sa.text("INSERT INTO users (username, dob, phone) VALUES ('b', '1990-01-01', '+912')")
        )
        conn.execute(
            sa.text(
                "INSERT INTO user_calls (user_id, listener_id, call_type, start_time) "
                "SELECT user_id, user_id, 'audio', '2026-11-29T06:00:00Z' FROM users"
            )
        )
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(
                sa.text(
                    "CREATE UNIQUE INDEX CONCURRENTLY ix_user_calls_start_time "
                    "ON user_calls (start_time)"
                )
            )
        conn.execute(
            sa.text("CREATE INDEX CONCURRENTLY ix_user_roles_role ON user_roles (role, user_id)")
        )
    assert index_state(engine, "ix_user_calls_start_time") == (False, True)

    result = Cli(url)("db", "upgrade")
    assert result.exit_code == 0, result.stderr
    for name in OWN_INDEXES:
        assert index_state(engine, name) == (True, False), name
    assert everything(url)["revision"] == schema.HEAD_REVISION
    engine.dispose()
