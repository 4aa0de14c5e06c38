"""The root `saathii-ops` command: global options, command groups, and the one
place where errors become a line on stderr and an exit code."""

from __future__ import annotations

import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperArgument, TyperOption

from saathii_ops import __version__
from saathii_ops.cli.common import JsonOption
from saathii_ops.cli.context import AppContext
from saathii_ops.cli.days import EARLIEST_DAY, LATEST_DAY
from saathii_ops.cli.help import WholeHelpGroup
from saathii_ops.cli.root_commands import ROOT_COMMANDS, LazyCommands
from saathii_ops.errors import ExitCode, OpsError, UsageError
from saathii_ops.output.masking import first_line, mask_secrets
from saathii_ops.output.text import escape_controls


class OpsGroup(WholeHelpGroup):
    """Turns every error a person can cause into one line and the SPEC's exit code. Its
    commands are built when a command line names them (cli/root_commands.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # read only: nothing adds a command to the root once Typer has built it
        self.commands = LazyCommands(ROOT_COMMANDS)  # type: ignore[assignment]

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        return list(self.commands)  # their names, without building them

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except OpsError as exc:
            self._fail(ctx, exc, exc)
        except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
            raise  # a closed stdout: Typer ends the command quietly
        except Exception as exc:
            self._fail(ctx, _database_error(exc) or self._unexpected(exc), exc)
        finally:
            if isinstance(ctx.obj, AppContext):
                ctx.obj.dispose()

    @staticmethod
    def _unexpected(exc: Exception) -> OpsError:
        """A bug, not the operator's doing: still one line (never the statement's
        parameters), the traceback with -v."""
        return OpsError(
            f"unexpected {type(exc).__name__}: {first_line(exc)} (-v shows the traceback)"
        )

    @staticmethod
    def _fail(ctx: typer.Context, error: OpsError, cause: BaseException) -> None:
        if isinstance(ctx.obj, AppContext) and ctx.obj.verbose:
            sys.stderr.write(mask_secrets("".join(traceback.format_exception(cause))))
        root = ctx.find_root().command
        json_output = (isinstance(ctx.obj, AppContext) and ctx.obj.json_output) or (
            isinstance(root, OpsGroup) and root.asks_json()
        )
        report_error(str(error), error.exit_code, json_output=json_output)
        raise typer.Exit(error.exit_code)

    arguments: tuple[str, ...] = ()

    def asks_json(self) -> bool:
        """--json given anywhere before `--` (also when the error came before the options
        were parsed: a bad option, a malformed value)."""
        arguments = self.arguments
        if "--" in arguments:
            arguments = arguments[: arguments.index("--")]
        return "--json" in arguments

    def main(self, *args: Any, **kwargs: Any) -> Any:
        none_without_coercing()
        kwargs["standalone_mode"] = False
        given = args[0] if args else kwargs.get("args")
        self.arguments = tuple(sys.argv[1:] if given is None else given)
        try:
            code = super().main(*args, **kwargs)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(ExitCode.INTERRUPTED)
        except typer.TyperException as exc:
            # click's exceptions, known by their base that Typer exports: a usage error (a
            # bad option, argument or command) exits 2, as click documents, with its `ctx`
            if exc.exit_code == UsageError.exit_code:
                self._usage_error(exc)
            report_error(exc.format_message(), exc.exit_code, json_output=self.asks_json())
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else ExitCode.OK)

    def _usage_error(self, exc: typer.TyperException) -> NoReturn:
        usage_ctx: typer.Context | None = getattr(exc, "ctx", None)
        if usage_ctx is not None and type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(short_usage(usage_ctx), err=True)
            sys.exit(UsageError.exit_code)
        misplaced = misplaced_global_option(usage_ctx, getattr(exc, "option_name", None))
        if misplaced:
            report_error(misplaced, UsageError.exit_code, json_output=self.asks_json())
            sys.exit(UsageError.exit_code)
        hint = f" (try '{usage_ctx.command_path} --help')" if usage_ctx else ""
        message = f"{exc.format_message()}{hint}"
        report_error(message, UsageError.exit_code, json_output=self.asks_json())
        sys.exit(UsageError.exit_code)


def report_error(message: str, exit_code: int, *, json_output: bool) -> None:
    """Every error: one line on stderr and, with --json, also one JSON document on stdout,
    so a script reading stdout always gets one. No password, no control character."""
    message = escape_controls(mask_secrets(message))
    if json_output:
        import json

        sys.stdout.write(json.dumps({"error": message, "exit_code": exit_code}) + "\n")
    typer.echo(f"error: {message}", err=True)


def short_usage(ctx: typer.Context) -> str:
    """A group given no command: its usage line and its commands, not the whole help."""
    formatter = ctx.make_formatter()
    ctx.command.format_commands(ctx, formatter)  # type: ignore[attr-defined]
    return (
        f"{ctx.get_usage()}\n\n{formatter.getvalue()}\n"
        f"'{ctx.command_path} COMMAND --help' shows a command's options"
        + ("" if ctx.parent else f", '{ctx.command_path} --help' the global options")
    )


# what a global option's value is, in the hint that says where the option goes
GLOBAL_OPTION_VALUES = {"--database-url": "URL", "--config": "FILE", "--now": "ISO-8601"}


def misplaced_global_option(ctx: typer.Context | None, option: str | None) -> str | None:
    """`saathii-ops status --config X`: the one line saying where --config goes."""
    if ctx is None or ctx.parent is None or option is None:
        return None
    root = ctx.find_root()
    for param in root.command.params:
        names = [*param.opts, *param.secondary_opts]
        if option in names and "--help" not in names:
            value = GLOBAL_OPTION_VALUES.get(names[0])
            given = f"{option} {value}" if value else option
            command = ctx.command_path.removeprefix(root.command_path).strip()
            return (
                f"{option} is a global option: give it before the command, "
                f"as in `{root.command_path} {given} {command}`"
            )
    return None


def none_without_coercing() -> None:
    """Keeps pydantic out of every Tab (it halves completion's CPU time) and out of the
    options a command is not given. Typer 0.29 coerces each parameter's value through a
    pydantic TypeAdapter it builds on first use, importing pydantic, even for a value of
    None, which its coercion then turns into None (() for a multi-value one) whatever the
    type without using the adapter. Completion parses with click's resilient parsing,
    which processes every parameter not given (all None) and makes any error a None; a job
    run processes each option it is not given. Typer builds its parameters itself and
    offers no hook to choose their class or skip this, so this one workaround replaces
    their process_value (click's documented Parameter method) for a None only, doing what
    Typer does with it, and pyproject.toml pins Typer to the minor release it was checked
    with (tests/cli/test_startup.py fails if it stops working)."""
    parameters: tuple[Any, ...] = (TyperOption, TyperArgument)
    for parameter in parameters:
        if not hasattr(parameter.process_value, "none_without_coercing"):
            parameter.process_value = _none_without_coercing(parameter.process_value)


def _none_without_coercing(process_value: Any) -> Any:
    def process_none_without_coercing(self: Any, ctx: typer.Context, value: Any) -> Any:
        missing = self.required and not ctx.resilient_parsing
        if value is None and not missing:  # a missing required value: Typer's own error
            value = () if self.multiple or self.nargs == -1 else None
            if self.required:
                return None  # what resilient parsing makes of click's MissingParameter
            return value if self.callback is None else self.callback(ctx, self, value)
        return process_value(self, ctx, value)

    process_none_without_coercing.none_without_coercing = True  # type: ignore[attr-defined]
    return process_none_without_coercing


app = typer.Typer(
    cls=OpsGroup,
    help="Saathii's back-office jobs: coin billing, call cleanup, presence cleanup, badges.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _database_error(exc: Exception) -> OpsError | None:
    """A database error anywhere outside the runner (the database went away mid-command,
    is read-only, lost a table) as the operator's error. Only SQLAlchemy raises one, so it
    is imported only if something already did."""
    if "sqlalchemy" not in sys.modules:
        return None
    from saathii_ops.db.errors import operator_error

    return operator_error(exc)


def configure_logging(verbose: bool) -> None:
    """Log lines (and their tracebacks) on stderr, never showing a password."""
    import logging

    class MaskingFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return mask_secrets(super().format(record))

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])


def parse_now(value: str | None) -> datetime | None:
    """ISO-8601; a value without an offset is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO-8601 date-time") from None
    try:
        moment = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+05:30 is before year 1 in UTC
        moment = None
    if moment is None or not EARLIEST_DAY <= moment.date() <= LATEST_DAY:
        raise typer.BadParameter(
            f"--now {value} is out of range: give an instant from {EARLIEST_DAY} "
            f"to {LATEST_DAY} (UTC)"
        )
    return moment


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"saathii-ops {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="Database URL; else SAATHII_DATABASE_URL, the config file's database_url, "
            "the app's DATABASE_URL, the embedded SQLite database.",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config file; else SAATHII_CONFIG.", show_default=False),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="Run as of this ISO-8601 instant (no offset means UTC); "
            "default: the database server's clock.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Debug logs and tracebacks on stderr; every detail in `status` and `demo`.",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    configure_logging(verbose)
    # --json given after the command too (the command declares it so that it parses)
    asked = isinstance(ctx.command, OpsGroup) and ctx.command.asks_json()
    ctx.obj = AppContext(
        database_url_option=database_url,
        config_option=config,
        now=parse_now(now),
        json_output=json_output or asked,
        verbose=verbose,
    )


def main() -> None:
    code: int | str | None = ExitCode.OK
    try:
        app()
    except SystemExit as exc:
        code = exc.code
    if not _stdout_flushed() and code in (None, ExitCode.OK):
        code = ExitCode.FAILED  # the output was cut short, as Typer exits mid-command
    sys.exit(code)


def _stdout_flushed() -> bool:
    """A reader that closed the pipe (`jobs history | head -n 1`) ends the command quietly:
    what it did not read is dropped, with no error line."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return False
    return True
