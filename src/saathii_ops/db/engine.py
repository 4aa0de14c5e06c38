"""Engines, URLs and transactions.

SQLite: Python's sqlite3 driver begins transactions on its own and commits
DDL; SQLAlchemy's documented "pysqlite transactions" recipe hands that back to
SQLAlchemy so that migrations, savepoints and read-only dry-runs behave as on
PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session

from saathii_ops.db import sql
from saathii_ops.db.errors import TIMED_OUT
from saathii_ops.errors import DatabaseUnavailable, UsageError
from saathii_ops.output.masking import first_line, mask_secrets

READ_ONLY = "saathii_read_only"


def parse_url(raw: str) -> URL:
    """Parse a database URL; PostgreSQL always goes through psycopg2.

    A URL that does not parse is not repeated: which of its parts is a password cannot be
    known. Nor is one whose host holds an `@` (a raw `@` in the password: SQLAlchemy and
    libpq take the password to end at the first one, and the driver's error would then
    quote the rest of it as the host name)."""
    try:
        url = sa.make_url(raw)
    except (ArgumentError, ValueError):
        raise UsageError(
            f"invalid database URL{_scheme_of(raw)}: it does not parse "
            "(the rest is not shown: it may hold a password)"
        ) from None
    if url.host and "@" in url.host:
        host = url.host.rpartition("@")[2] + (f":{url.port}" if url.port else "")
        raise UsageError(
            f"invalid database URL ({url.drivername}://…@{host}): more than one '@' before "
            "the host; write an '@' in the user name or password as %40"
        )
    backend = url.get_backend_name()
    if backend in ("postgres", "postgresql"):
        _check_query_password(url)
        # The app may use asyncpg or the Heroku-style scheme; the jobs are synchronous.
        return url.set(drivername="postgresql+psycopg2")
    if backend == "sqlite":
        return url.set(drivername="sqlite")
    raise UsageError(f"unsupported database {backend!r}: use a postgresql:// or sqlite:// URL")


def _check_query_password(url: URL) -> None:
    """A URL with `?password=`: every other key of its query must be one libpq knows. A raw
    `&` in the password (`?password=my&Secret=Tail`) makes the rest of it a key of its own,
    which the displayed URL and the driver's error ("invalid connection option") would show."""
    if not any("pass" in key.lower() for key in url.query):
        return
    from psycopg2 import ProgrammingError  # type: ignore[import-untyped]
    from psycopg2.extensions import parse_dsn  # type: ignore[import-untyped]

    for key in url.query:
        try:
            parse_dsn(f"{key}=x")
        except ProgrammingError:
            raise UsageError(
                f"invalid database URL ({url.drivername}://…@{url.host or ''}): its query holds "
                "a password and an option PostgreSQL does not know (not shown: an '&' in the "
                "password splits it; write it as %26)"
            ) from None


def _scheme_of(raw: str) -> str:
    """` (postgresql://…)`: the scheme of a URL that does not parse, when it has one."""
    scheme, separator, _ = raw.partition("://")
    if separator and scheme.replace("+", "").isalnum():
        return f" ({scheme}://…)"
    return ""


def mask_url_text(raw: str) -> str:
    """Hide a password in a URL that may not even parse."""
    try:
        return mask_secrets(sa.make_url(raw).render_as_string(hide_password=True))
    except (ArgumentError, ValueError):
        return mask_secrets(raw)


def display_url(url: URL) -> str:
    return mask_secrets(url.render_as_string(hide_password=True))


def is_sqlite(bind: Engine | Connection | Session) -> bool:
    return (
        bind.get_bind().dialect.name == "sqlite"
        if isinstance(bind, Session)
        else (bind.dialect.name == "sqlite")
    )


def make_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            create_private_file(Path(database).expanduser())
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        _apply_pysqlite_recipe(engine)
    else:
        try:
            engine = sa.create_engine(
                url,
                pool_pre_ping=True,
                # the name shows in pg_stat_activity: a DBA sees which backends are ours
                connect_args={"connect_timeout": 10, "application_name": "saathii-ops"},
            )
        except NoSuchModuleError:  # pragma: no cover - psycopg2 is a dependency
            raise UsageError("the PostgreSQL driver psycopg2 is not installed") from None
        _apply_postgresql_session_setup(engine)
    return engine


def create_private_file(path: Path) -> None:
    """Create an SQLite database file (or a lock file beside it) readable by its owner
    only, 0600, creating missing directories 0700: it holds wallets and calls.

    An existing file or directory keeps its mode: the operator chose it.
    """
    try:
        missing = [parent for parent in (path.parent, *path.parent.parents) if not parent.exists()]
        for directory in reversed(missing):
            directory.mkdir(mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    except OSError as exc:
        raise DatabaseUnavailable(
            f"cannot create the SQLite database {path}: {exc.strerror}"
        ) from None


def _apply_pysqlite_recipe(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()
        dbapi_connection.create_function(
            "saathii_elapsed_seconds", 2, sql.sqlite_elapsed_seconds, deterministic=True
        )
        dbapi_connection.create_function(
            "saathii_local_date", 2, sql.sqlite_local_date, deterministic=True
        )

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        read_only = bool(conn.get_execution_options().get(READ_ONLY))
        # Set on every begin: a pooled connection keeps the pragma of its last use.
        conn.exec_driver_sql(f"PRAGMA query_only = {int(read_only)}")
        # A writer takes the write lock up front instead of failing to upgrade later.
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _apply_postgresql_session_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.close()
        dbapi_connection.commit()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")


def unreachable(
    url: URL, exc: BaseException, timeout_seconds: float | None = None
) -> DatabaseUnavailable:
    """Connecting failed: the server is down, or (SQLite) the file is not a database; or
    reading the schema's revision timed out (`timeout_seconds`), waiting for a lock."""
    if getattr(getattr(exc, "orig", None), "pgcode", None) in TIMED_OUT:
        return DatabaseUnavailable(
            f"the database at {display_url(url)} did not give its schema revision within "
            f"{timeout_seconds or 0:g} s (a migration or a DBA holding a lock on alembic_version?)"
        )
    return DatabaseUnavailable(
        f"cannot reach the database at {display_url(url)}: {first_line(exc)}"
    )


@contextmanager
def transaction(engine: Engine, *, read_only: bool = False) -> Iterator[Session]:
    """One transaction as a Session. Rolled back unless the caller commits it.

    The session never commits by itself: whoever holds it (the job runner, a
    command that changes settings) calls `session.commit()` explicitly.
    """
    try:
        conn = engine.connect()
    except DBAPIError as exc:
        raise unreachable(engine.url, exc) from exc
    with conn:
        if read_only:
            conn = conn.execution_options(**{READ_ONLY: True})
        with Session(bind=conn, autoflush=False, expire_on_commit=False) as session:
            try:
                yield session
            finally:
                if session.in_transaction():
                    session.rollback()


def database_now(session: Session) -> datetime:
    """The database server's clock (PostgreSQL `now()`); SQLite has no server, so the host's."""
    if is_sqlite(session):
        return datetime.now(UTC)
    value = session.execute(sa.text("SELECT now()")).scalar_one()
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def database_clock(session: Session) -> datetime:
    """The database server's clock as it ticks (PostgreSQL `clock_timestamp()`, not the
    transaction's `now()`): a run's start and end, so its duration is true."""
    if is_sqlite(session):
        return datetime.now(UTC)
    value = session.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def disable_jit(session: Session) -> None:
    """PostgreSQL: no JIT in this transaction. The jobs' plans (subqueries over
    user_status and user_calls) are estimated far above jit_above_cost, and JIT
    then spends longer compiling them than they take to run."""
    if not is_sqlite(session):
        session.execute(sa.text("SET LOCAL jit = off"))


def set_statement_timeout(session: Session, seconds: float) -> None:
    """Bound every statement of this transaction, so a stuck run cannot hold its lock forever."""
    if not is_sqlite(session):
        session.execute(sa.text(f"SET LOCAL statement_timeout = {int(seconds * 1000)}"))


def bound_statements(session: Session, seconds: float) -> None:
    """Bound every statement of this transaction and every lock it waits for: the
    bookkeeping around a run (its failure record, its reads after the commit)."""
    if not is_sqlite(session):
        milliseconds = max(1, int(seconds * 1000))
        session.execute(sa.text(f"SET LOCAL statement_timeout = {milliseconds}"))
        session.execute(sa.text(f"SET LOCAL lock_timeout = {milliseconds}"))
