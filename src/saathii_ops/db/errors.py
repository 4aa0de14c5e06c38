"""Database errors as the operator's: the one home of their translation into an error line
and its exit code."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError

from saathii_ops.errors import DatabaseUnavailable, OpsError, SchemaNotReady
from saathii_ops.output.masking import first_line

# SQLSTATEs (PostgreSQL) and messages (SQLite) of errors that are the database's state,
# not a bug: each gets its exit code and a line that says what to do.
_READ_ONLY = ("25006", "attempt to write a readonly database")
_SCHEMA_CHANGED = ("42P01", "42703", "no such table", "no such column")
_NOT_A_DATABASE = ("file is not a database",)


# --- database errors as the operator's: the one home of their translation -------------
# A command outside a job run takes `operator_error`; the runner tells a lost connection
# (`lost_connection`) and the database's state (`classify_database_error`) from a failed
# run (any other error, recorded); connecting takes `unreachable`.


def operator_error(exc: BaseException) -> OpsError | None:
    """A database error outside a job run: the database's state (see
    `classify_database_error`), else any OperationalError (the server went away, a lock or
    statement timeout) as the database being unavailable."""
    error = classify_database_error(exc)
    if error is None and isinstance(exc, OperationalError):
        error = DatabaseUnavailable(f"database error: {first_line(exc)}")
    return error


def lost_connection(exc: BaseException) -> DatabaseUnavailable | None:
    """The connection died under a run (the server went away): not the job's failure."""
    if isinstance(exc, OperationalError) and exc.connection_invalidated:
        return DatabaseUnavailable(f"lost the database: {first_line(exc)}")
    return None


# SQLSTATEs of a statement cancelled by statement_timeout, and of a lock_timeout
TIMED_OUT = ("57014", "55P03")


def classify_database_error(exc: BaseException) -> OpsError | None:
    """The operator's error for a database error caused by the database's state, else None."""
    if not isinstance(exc, DBAPIError):
        return None
    code = getattr(exc.orig, "pgcode", None)
    text = first_line(exc)

    def matches(signs: tuple[str, ...]) -> bool:
        return code in signs or any(sign in text for sign in signs)

    if matches(_READ_ONLY):
        return DatabaseUnavailable(
            f"the database is read-only ({text}): a hot standby, or "
            "default_transaction_read_only is on; point saathii-ops at the primary"
        )
    if matches(_SCHEMA_CHANGED):
        return SchemaNotReady(
            f"the database's schema is not the app's ({text}): "
            "`saathii-ops db adopt` lists what differs"
        )
    if matches(_NOT_A_DATABASE):
        return DatabaseUnavailable(f"cannot open the database: {text}")
    return None
