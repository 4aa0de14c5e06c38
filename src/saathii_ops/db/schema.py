"""Schema state and migrations: `db upgrade | current | adopt` and the runner's readiness check.

A job run checks the schema without Alembic: it reads `alembic_version` and compares it
with REVISIONS, the package's own list of its migrations (tests/runtime/test_schema.py keeps it
equal to what Alembic computes from the scripts). Alembic, and the scripts it reads, are
imported only by `db upgrade | adopt` (start-up cost: docs/performance.md).
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError, PendingRollbackError

from saathii_ops.db.engine import READ_ONLY, display_url, is_sqlite, unreachable
from saathii_ops.db.errors import classify_database_error
from saathii_ops.db.tables import APP_TABLE_COLUMNS, APP_TABLES
from saathii_ops.errors import (
    DatabaseUnavailable,
    ExitCode,
    Interrupted,
    OpsError,
    SchemaNotReady,
)
from saathii_ops.output.masking import first_line

if TYPE_CHECKING:
    from alembic.config import Config

    from saathii_ops.runtime.guard import Stop

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# every revision of migrations/versions, oldest first: the last is the head this code needs
REVISIONS = ("0001", "0002", "0003", "0004", "0005")
HEAD_REVISION = REVISIONS[-1]
APP_SCHEMA_REVISION = REVISIONS[0]
VERSION_TABLE = "alembic_version"  # Alembic's default, which migrations/env.py keeps


def _config(connection: Connection | None = None, output: TextIO | None = None) -> Config:
    from alembic.config import Config

    config = Config(output_buffer=output)
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def is_known_revision(revision: str) -> bool:
    return revision in REVISIONS


def _current_revision(conn: Connection, tables: set[str]) -> str | None:
    """What Alembic's MigrationContext.get_current_revision reads; several rows (branches,
    which these migrations never make) are shown together, comma-separated."""
    if VERSION_TABLE not in tables:
        return None
    rows = sorted(conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalars())
    return ", ".join(rows) or None


@dataclass
class SchemaState:
    url: str
    current: str | None
    head: str
    app_tables_present: list[str] = field(default_factory=list)

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    @property
    def exit_code(self) -> ExitCode:
        """`db current`: a schema not at head is not ready (SPEC §9)."""
        return ExitCode.OK if self.at_head else ExitCode.UNAVAILABLE

    @property
    def app_tables_missing(self) -> list[str]:
        """The app's tables gone from a database these migrations manage."""
        if self.current is None:
            return []
        return sorted(set(APP_TABLE_COLUMNS) - set(self.app_tables_present))

    @property
    def unadopted(self) -> bool:
        """The app created its tables here, but these migrations were never recorded."""
        return self.current is None and bool(self.app_tables_present)


def inspect_schema(engine: Engine, *, timeout_seconds: float | None = None) -> SchemaState:
    """`timeout_seconds`: PostgreSQL, the longest any of its statements may take or wait
    for a lock (a migration holding alembic_version must not hold a job run for ever)."""
    try:
        with engine.connect() as conn:
            # read-only: on SQLite a writer's transaction takes the database's write lock,
            # and a run checking the schema must not queue behind another run's write
            # before it can find that run's job lock taken (and record itself skipped)
            conn.execution_options(**{READ_ONLY: True})
            if timeout_seconds is not None and not is_sqlite(conn):
                milliseconds = max(1, int(timeout_seconds * 1000))
                conn.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = {milliseconds}")
            tables = set(sa.inspect(conn).get_table_names())
            current = _current_revision(conn, tables)
    except DBAPIError as exc:  # unreachable, or not a database at all (SQLite)
        raise unreachable(engine.url, exc, timeout_seconds) from exc
    present = sorted(name for name in APP_TABLE_COLUMNS if name in tables)
    return SchemaState(display_url(engine.url), current, HEAD_REVISION, present)


def require_head(engine: Engine, *, timeout_seconds: float | None = None) -> None:
    """Refuse to run a job on a database whose schema is not the one this code expects."""
    reason = not_ready_reason(inspect_schema(engine, timeout_seconds=timeout_seconds))
    if reason is not None:
        raise SchemaNotReady(reason)


def not_ready_reason(state: SchemaState) -> str | None:
    """Why the schema is not the one this code expects, and what to run; None at head."""
    if state.at_head:
        if state.app_tables_missing:
            return (
                f"the app's tables {', '.join(state.app_tables_missing)} are missing "
                "(saathii-ops never drops them): restore them from the app's backup"
            )
        return None
    if state.unadopted:
        return (
            "the app's tables are here but this database was never adopted: "
            "run `saathii-ops db adopt`, then `saathii-ops db upgrade`"
        )
    if state.current is None:
        return "the database has no schema yet: run `saathii-ops db upgrade`"
    if ", " in state.current:
        return (
            f"{VERSION_TABLE} holds several revisions ({state.current}) where these "
            "migrations keep one: leave only the revision the schema is at"
        )
    if not is_known_revision(state.current):
        return (
            f"the schema is at revision {state.current}, which this version of saathii-ops "
            "does not know (a newer version migrated it): install that version"
        )
    return (
        f"the schema is at revision {state.current}, this version needs {state.head}: "
        "run `saathii-ops db upgrade`"
    )


@dataclass
class UpgradeReport:
    url: str
    before: str | None
    after: str


def _upgradable(engine: Engine) -> SchemaState:
    state = inspect_schema(engine)
    if state.unadopted:
        raise SchemaNotReady(
            "this database already holds the app's tables "
            f"({', '.join(state.app_tables_present)}) but was never adopted: "
            "run `saathii-ops db adopt` first; upgrade will not touch the app's tables"
        )
    if state.current is not None and not is_known_revision(state.current):
        raise SchemaNotReady(not_ready_reason(state) or "")
    return state


def upgrade(engine: Engine) -> UpgradeReport:
    """Migrate to head. SQLite: in one transaction. PostgreSQL: Alembic runs the
    transactions, so that a revision can build its indexes CONCURRENTLY outside one
    (what each revision locks: docs/operations.md); upgrades are serialised on an advisory
    lock, so a second one waits for the first and then finds the schema at head.

    Whatever stops it (SIGINT, SIGTERM, a lost connection, a failed statement) ends in one
    error naming the revision the schema is at, read afresh: each revision's changes and
    its stamp commit together, so the schema is at that revision (an interrupted index
    build leaves an INVALID index the next upgrade rebuilds)."""
    import math

    from saathii_ops.runtime.guard import RunGuard

    guard = RunGuard(engine, math.inf, "")
    try:
        with guard:
            report = _upgrade(engine)
    except Exception as exc:
        raise _upgrade_error(engine, exc, guard.stop) from exc
    if guard.stop is not None and guard.stop.exit_code is not None:
        raise Interrupted(
            f"db upgrade {guard.stop.reason} after it finished: the schema is at revision "
            f"{report.after}",
            guard.stop.exit_code,
        )
    return report


# PostgreSQL advisory lock of `db upgrade` (the runner's namespace, a key no job's crc32
# lock name is likely to take): two upgrades never run their migrations at once
UPGRADE_LOCK = (0x5AA7, 0)
UPGRADE_LOCK_POLL_SECONDS = 0.5


def _upgrade(engine: Engine) -> UpgradeReport:
    from alembic import command

    if is_sqlite(engine):
        # BEGIN IMMEDIATE: a second upgrade waits for the first's write lock, then reads
        # the revision the first one left
        state = _upgradable(engine)
        with engine.begin() as conn:
            command.upgrade(_config(conn), "head")
        return UpgradeReport(state.url, state.current, state.head)
    with _upgrade_lock(engine):
        state = _upgradable(engine)  # read after the lock: another upgrade may have run
        with engine.connect() as conn:
            command.upgrade(_config(conn), "head")
    return UpgradeReport(state.url, state.current, state.head)


@contextmanager
def _upgrade_lock(engine: Engine) -> Iterator[None]:
    """Hold `db upgrade`'s session-level advisory lock on a connection of its own, in
    autocommit: waiting for it (polling, outside any transaction) holds no snapshot, which
    the other upgrade's CREATE INDEX CONCURRENTLY would otherwise wait for, deadlocked. The
    server releases it if the process dies."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        try_lock = sa.text("SELECT pg_try_advisory_lock(:namespace, :key)")
        key = {"namespace": UPGRADE_LOCK[0], "key": UPGRADE_LOCK[1]}
        while not conn.execute(try_lock, key).scalar_one():
            time.sleep(UPGRADE_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            try:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:namespace, :key)"), key)
            except Exception:  # lost, or the upgrade was stopped: no statement goes out
                # closed rather than pooled, so the server releases the lock with it
                with suppress(Exception):
                    conn.invalidate()


def _upgrade_error(engine: Engine, exc: Exception, stop: Stop | None) -> OpsError:
    """The one line for an upgrade that did not finish, with the revision it left."""
    if stop is None and isinstance(exc, OpsError):
        return exc  # refused before it began (not adopted, an unknown revision)
    state_error = classify_database_error(exc) if stop is None else None
    if state_error is not None:
        return state_error
    at = _revision_now(engine)
    again = "`saathii-ops db upgrade` continues from there"
    if stop is not None:
        reason = f"db upgrade {stop.reason}: stopped, the schema is at {at}; {again}"
        if stop.exit_code is not None:
            return Interrupted(reason, stop.exit_code)
        return SchemaNotReady(reason)
    if _connection_lost(exc):
        return DatabaseUnavailable(
            f"db upgrade lost the database connection ({first_line(_first_cause(exc))}): "
            f"the schema is at {at}; {again}"
        )
    # e.g. a table of a later revision is already there (created by hand)
    return SchemaNotReady(
        f"db upgrade failed, the schema is still at {at}: {first_line(exc)}; fix that (-v shows "
        "the statement) and run it again"
    )


def _connection_lost(exc: BaseException) -> bool:
    """The connection died under the upgrade (its backend terminated, the server gone):
    SQLAlchemy says so on the error, or, when Alembic's next step used the dead
    connection, by refusing it until it is rolled back."""
    if isinstance(exc, PendingRollbackError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError) and getattr(exc.orig, "pgcode", None) in (
        "57P01",  # admin_shutdown: pg_terminate_backend, a fast shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: the server is starting up
    )


def _first_cause(exc: BaseException) -> BaseException:
    """The driver's error behind SQLAlchemy's refusal of a dead connection (which only says
    to roll back), when there is one."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DBAPIError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


def _revision_now(engine: Engine) -> str:
    """The schema's revision as the database says it now, in words."""
    try:
        current = inspect_schema(engine, timeout_seconds=REVISION_READ_SECONDS).current
    except DatabaseUnavailable:
        return (
            "the revision it had before the interrupted step (the database does not answer "
            "now: `saathii-ops db current` shows it when it does)"
        )
    return f"revision {current or 'none'}"


REVISION_READ_SECONDS = 10.0


@dataclass
class UpgradeScript:
    url: str
    before: str | None
    after: str
    sql: str  # empty when the schema is at head


def upgrade_sql(engine: Engine) -> UpgradeScript:
    """The SQL `upgrade` would run from the database's revision to head (Alembic's offline
    mode, for a DBA to read or run), changing nothing: the revision is read read-only."""
    state = _upgradable(engine)
    if state.at_head:
        return UpgradeScript(state.url, state.current, state.head, "")
    from alembic import command

    output = io.StringIO()
    config = _config(output=output)
    config.attributes["dialect_name"] = engine.dialect.name
    span = f"{state.current}:head" if state.current else "head"
    command.upgrade(config, span, sql=True)
    return UpgradeScript(state.url, state.current, state.head, output.getvalue())


@dataclass
class AdoptReport:
    url: str
    adopted_revision: str
    already_adopted: bool
    # keys the app's tables lack where the jobs tolerate duplicates by a rule: a warning
    missing_keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class JobKey:
    """A key of the app's tables the jobs rely on."""

    table: str
    columns: tuple[str, ...]
    # without it: the jobs go on (True: they read one row of duplicates by a rule and
    # `wallets audit` names the duplicates) or adoption is refused (a duplicate would
    # charge, count or settle one user twice)
    tolerated: bool
    without_it: str

    def __str__(self) -> str:
        return f"{self.table} ({', '.join(self.columns)})"


JOB_KEYS = (
    JobKey(
        "listener_badges",
        ("listener_id", "date"),
        True,
        "the jobs read one row per listener and day (docs/decisions.md#badges); "
        "`wallets audit` names the duplicates",
    ),
    JobKey("user_wallets", ("user_id",), False, "a user's two wallets would both be billed"),
    JobKey("user_status", ("user_id",), False, "a user's two presence rows would disagree"),
    JobKey("user_roles", ("user_id", "role"), False, "a listener would be counted twice"),
)


def missing_job_keys(engine: Engine) -> list[JobKey]:
    """The keys of JOB_KEYS the database lacks: no primary key, unique constraint or
    unique index on the key's columns (or on some of them, which is stricter)."""
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        missing = []
        for key in JOB_KEYS:
            unique: list[list[str]] = [
                inspector.get_pk_constraint(key.table).get("constrained_columns") or []
            ]
            unique += [c["column_names"] for c in inspector.get_unique_constraints(key.table)]
            unique += [
                [name for name in i["column_names"] if name is not None]
                for i in inspector.get_indexes(key.table)
                if i.get("unique")
            ]
            if not any(columns and set(columns) <= set(key.columns) for columns in unique):
                missing.append(key)
    return missing


def app_schema_differences(engine: Engine) -> tuple[list[str], list[str]]:
    """What of the app's schema is not there (`table`, `table.column`), and which columns
    have another type than the app's (`table.column is X, expected Y`).

    Types are compared as the database's own dialect spells them (NUMERIC(12, 2),
    TIMESTAMP WITH TIME ZONE, TEXT[]), so a widened or narrowed column is found.
    """
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        tables = set(inspector.get_table_names())
        missing: list[str] = []
        differing: list[str] = []
        for expected in APP_TABLES:
            if expected.name not in tables:
                missing.append(expected.name)
                continue
            present = {column["name"]: column for column in inspector.get_columns(expected.name)}
            for column in expected.columns:
                found = present.get(column.name)
                if found is None:
                    missing.append(f"{expected.name}.{column.name}")
                    continue
                want = column.type.compile(dialect=conn.dialect)
                have = found["type"].compile(dialect=conn.dialect)
                if have != want:
                    differing.append(f"{expected.name}.{column.name} is {have}, expected {want}")
    return missing, differing


def adopt(engine: Engine) -> AdoptReport:
    """Record the app's schema as revision 0001 after checking it is really there."""
    state = inspect_schema(engine)
    if state.current is not None:
        return AdoptReport(state.url, state.current, already_adopted=True)
    missing, differing = app_schema_differences(engine)
    if missing or differing:
        problems = (["missing " + ", ".join(missing)] if missing else []) + (
            ["different types: " + "; ".join(differing)] if differing else []
        )
        raise SchemaNotReady("cannot adopt: the app's schema differs, " + "; ".join(problems))
    missing_keys = missing_job_keys(engine)
    required = [key for key in missing_keys if not key.tolerated]
    if required:
        raise SchemaNotReady(
            "cannot adopt: the jobs rely on keys the app's tables lack: "
            + "; ".join(f"{key} unique ({key.without_it})" for key in required)
            + "; a DBA adds them (saathii-ops never changes the app's tables)"
        )
    from alembic import command

    with engine.begin() as conn:
        command.stamp(_config(conn), APP_SCHEMA_REVISION)
    return AdoptReport(
        state.url,
        APP_SCHEMA_REVISION,
        already_adopted=False,
        missing_keys=[f"{key} is not unique: {key.without_it}" for key in missing_keys],
    )
