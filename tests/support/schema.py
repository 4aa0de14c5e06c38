"""Databases as the app made them, and what a database holds (tables, indexes, revision)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import make_engine, parse_url
from saathii_ops.db.tables import APP_TABLES, metadata
from tests.conftest import Cli

APP_SCHEMA_SQL = Path(__file__).resolve().parents[1] / "fixtures" / "app-schema.sql"
REVISION_0002 = importlib.import_module(
    "saathii_ops.db.migrations.versions.0002_ops_tables_and_indexes"
)
OWN_INDEXES = sorted(name for name, *_ in REVISION_0002.INDEXES)


def create_app_tables(url: str, backend: str) -> None:
    """A database as the app made it: its own DDL on PostgreSQL, the same tables on SQLite."""
    engine = make_engine(parse_url(url))
    with engine.begin() as conn:
        if backend == "postgresql":
            conn.exec_driver_sql(APP_SCHEMA_SQL.read_text())
        else:
            metadata.create_all(conn, tables=list(APP_TABLES))
        conn.execute(
            sa.text(
                "INSERT INTO users (username, dob, phone) VALUES ('asha', '1990-01-01', '+911')"
            )
        )
    engine.dispose()


def adopted(url: str, backend: str) -> str:
    """The app's tables as the app made them (one user), adopted: at revision 0001."""
    create_app_tables(url, backend)
    result = Cli(url)("db", "adopt")
    assert result.exit_code == 0, result.stderr
    return url


def table_names(url: str) -> list[str]:
    engine = make_engine(parse_url(url))
    with engine.connect() as conn:
        names = sorted(sa.inspect(conn).get_table_names())
    engine.dispose()
    return names


def everything(url: str) -> dict[str, Any]:
    """What a database holds: its tables, their indexes, its schema revision."""
    engine = make_engine(parse_url(url))
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        tables = sorted(inspector.get_table_names())
        indexes = {t: sorted(i["name"] for i in inspector.get_indexes(t)) for t in tables}
        revision = (
            conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            if "alembic_version" in tables
            else None
        )
    engine.dispose()
    return {"tables": tables, "indexes": indexes, "revision": revision}


def index_state(engine: Engine, name: str) -> tuple[bool, bool] | None:
    """(valid, unique) of a PostgreSQL index, None when there is none."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT indisvalid, indisunique FROM pg_index WHERE indexrelid = to_regclass(:name)"
            ),
            {"name": name},
        ).one_or_none()
    return None if row is None else (row[0], row[1])
