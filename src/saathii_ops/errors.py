"""The exit codes of SPEC §9, and the errors a person can cause, each with its code.

The one home of exit codes: an error carries its own; a result that is not an error
(a run, the status, the schema, the crontab) names its code from `ExitCode` in an
`exit_code` property; the command layer ends with `commands.common.finish`, and the CLI
turns any error into one line on stderr and its code (cli.OpsGroup).
"""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # done; also nothing to do, or skipped
    FAILED = 1  # the job ran but some rows failed; status unhealthy; cron install --check: drift
    USAGE = 2  # a usage or configuration error
    UNAVAILABLE = 3  # the database is unreachable, or its schema is not ready
    INTERRUPTED = 130  # Ctrl-C at a prompt, SIGINT during a run (the shell's 128 + SIGINT)
    TERMINATED = 143  # SIGTERM during a run (128 + SIGTERM): cron's kill, Kubernetes' deadline


class OpsError(Exception):
    """An error with a clear message for the operator."""

    exit_code = ExitCode.FAILED


class UsageError(OpsError):
    """A bad option, URL or configuration value."""

    exit_code = ExitCode.USAGE


class DatabaseUnavailable(OpsError):
    """The database cannot be reached."""

    exit_code = ExitCode.UNAVAILABLE


class SchemaNotReady(OpsError):
    """The database is reachable but its schema is missing, old or not adopted."""

    exit_code = ExitCode.UNAVAILABLE


class PlanChanged(RuntimeError):
    """A guarded write changed other rows than the plan read just before it expected
    (billing's and settlement's statements, the badges written). The job's row locks
    (PostgreSQL) or write lock (SQLite) make it impossible unless something is badly wrong,
    such as the app writing without them. Not the operator's doing, so not an OpsError:
    the run fails, is rolled back whole and recorded; the next run plans afresh."""


class Interrupted(OpsError):
    """A run stopped by a signal: exit 128 + the signal's number, as a shell reports a
    process the signal ended (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, message: str, exit_code: ExitCode) -> None:
        super().__init__(message)
        self.exit_code = exit_code
