"""The errors a person can cause, each with the exit code of SPEC §9.

The CLI turns any of these into one line on stderr and the exit code; nothing
else in the code base decides exit codes.
"""


class OpsError(Exception):
    """An error with a clear message for the operator."""

    exit_code = 1


class UsageError(OpsError):
    """A bad option, URL or configuration value."""

    exit_code = 2


class DatabaseUnavailable(OpsError):
    """The database cannot be reached."""

    exit_code = 3


class SchemaNotReady(OpsError):
    """The database is reachable but its schema is missing, old or not adopted."""

    exit_code = 3


class Interrupted(OpsError):
    """A run stopped by a signal: exit 128 + the signal's number (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
