"""A scratch PostgreSQL database for a benchmark: created at the latest schema,
filled by set-based SQL, dropped afterwards unless kept."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from saathii_ops.db import schema
from saathii_ops.db.engine import make_engine, parse_url


@contextmanager
def scratch_database(server_url: str, name: str, *, keep: bool) -> Iterator[tuple[Engine, URL]]:
    server = parse_url(server_url)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = server.set(database=name)
    engine = make_engine(url)
    try:
        schema.upgrade(engine)
        yield engine, url
    finally:
        engine.dispose()
        if not keep:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def fill(engine: Engine, sql: str, params: dict[str, Any]) -> float:
    """Run each `;`-separated statement of `sql` in one transaction; the seconds it took."""
    started = time.monotonic()
    with engine.begin() as conn:
        for statement in sql.split(";"):
            if statement.strip():
                conn.execute(sa.text(statement), params)
    return time.monotonic() - started
