"""What every command shares: the typed context, the `--json` and `--dry-run` options,
completing job names, and running a registered job (the command of a job without options
of its own is made here, from its registry entry).

Command modules import only what `--help` and completion need; the libraries and
services a command uses are imported by the command when it runs (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Protocol

import typer

from saathii_ops.cli.context import AppContext
from saathii_ops.errors import ExitCode, OpsError
from saathii_ops.output.masking import mask_secrets
from saathii_ops.output.render import error_log_line, show, stdout_console
from saathii_ops.output.text import escape_controls
from saathii_ops.runtime.registry import JOBS, Job, get_job

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from saathii_ops.runtime.runner import RunResult

# The one --json, given before the command or after it: the root callback reads it from the
# whole command line once (a command declares it so that it parses; its value is the root's).
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="One JSON document on stdout (before or after the command)."),
]
DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Show what a real run at the same instant would change; change nothing."
    ),
]


def complete_job_name(incomplete: str) -> list[str]:
    """Shell completion of a job name (`jobs pause <Tab>`)."""
    return [job.name for job in JOBS if job.name.startswith(incomplete)]


class Outcome(Protocol):
    @property
    def exit_code(self) -> ExitCode: ...


def finish(outcome: Outcome) -> None:
    """End a command with its outcome's exit code (its output already written)."""
    if outcome.exit_code != ExitCode.OK:
        raise typer.Exit(outcome.exit_code)


def app_context(ctx: typer.Context) -> AppContext:
    app = ctx.find_object(AppContext)
    assert app is not None, "the root callback sets the context"
    return app


def run_registered_job(
    ctx: typer.Context,
    job_name: str,
    *,
    dry_run: bool,
    options: object = None,
) -> None:
    """Run one job through the runner (its service gets the command's `options`), render
    its result, exit with its code."""
    app = app_context(ctx)
    result = run_registered(app, job_name, dry_run=dry_run, options=options)
    show_run(app, result)


def run_registered(
    app: AppContext, job_name: str, *, dry_run: bool, options: object = None
) -> RunResult:
    """Run one job through the runner; its result, not rendered yet."""
    import time

    from saathii_ops.runtime.runner import run_job

    job = get_job(job_name)
    console = stdout_console()
    started = time.monotonic()
    try:
        return run_job(app.engine, app.settings, job, now=app.now, dry_run=dry_run, options=options)
    except OpsError as exc:
        if not (app.json_output or console.is_terminal):
            # the run's log has its line too; the error's own line goes to stderr
            line = error_log_line(
                job.name, mask_secrets(str(exc)), exc.exit_code, time.monotonic() - started
            )
            console.file.write(escape_controls(line) + "\n")
        raise


def show_run(app: AppContext, result: RunResult) -> None:
    """A run's result on stdout; the command exits with its code."""
    show(stdout_console(), result, json_output=app.json_output, database=app.database)
    finish(result)


def job_command(job: Job) -> Callable[..., None]:
    """The command of a job that has no options of its own: run it."""

    def command(
        ctx: typer.Context, dry_run: DryRunOption = False, json_output: JsonOption = False
    ) -> None:
        run_registered_job(ctx, job.name, dry_run=dry_run)

    return command


@contextmanager
def read_only(app: AppContext) -> Iterator[tuple[Session, datetime]]:
    """A read-only transaction on a ready schema, with the run's "now" (SPEC §3)."""
    from saathii_ops.db.engine import database_now, transaction
    from saathii_ops.db.schema import require_head

    require_head(app.engine)
    with transaction(app.engine, read_only=True) as session:
        yield session, app.now or database_now(session)
