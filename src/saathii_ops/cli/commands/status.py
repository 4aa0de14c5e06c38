"""`saathii-ops status`: the health of the jobs and of the data, for people and monitors."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from saathii_ops.cli.common import JsonOption, app_context, finish
from saathii_ops.errors import UsageError
from saathii_ops.output.masking import mask_secrets
from saathii_ops.output.prometheus import prometheus_text, write_textfile
from saathii_ops.output.render import emit_json, stdout_console
from saathii_ops.output.status_screen import render_status, watch_status
from saathii_ops.scheduling import targets

if TYPE_CHECKING:
    from rich.console import Console

    from saathii_ops.status.report import StatusReport

WATCH_SECONDS = 5.0  # a status on a large database takes about half a second


class Format(StrEnum):
    text = "text"
    prometheus = "prometheus"


FormatOption = Annotated[
    Format,
    typer.Option(
        "--format",
        help="text: a summary for people; prometheus: the text exposition format "
        "(for a scraper or node_exporter's textfile collector).",
    ),
]
CrontabFileOption = Annotated[
    Path | None,
    typer.Option(
        "--crontab-file",
        help="The crontab holding the installed block; default: "
        f"{targets.SYSTEM_CRONTAB} if it exists, else the user's crontab.",
        dir_okay=False,
        show_default=False,
    ),
]
MetricsFileOption = Annotated[
    Path | None,
    typer.Option(
        "--metrics-file",
        help="With --format prometheus: write the text to this file, atomically "
        "(node_exporter's textfile collector), instead of stdout.",
        dir_okay=False,
        show_default=False,
    ),
]
WatchOption = Annotated[
    bool,
    typer.Option(
        "--watch",
        help=f"Refresh in place every SECONDS ({WATCH_SECONDS:g} if not given) until "
        "Ctrl-C; a terminal only.",
    ),
]
SecondsArgument = Annotated[
    float | None,
    typer.Argument(
        metavar="SECONDS",
        min=0.5,
        help="With --watch: how often to refresh, in seconds.",
        show_default=False,
    ),
]


def status(
    ctx: typer.Context,
    json_output: JsonOption = False,
    output_format: FormatOption = Format.text,
    crontab_file: CrontabFileOption = None,
    metrics_file: MetricsFileOption = None,
    watch: WatchOption = False,
    seconds: SecondsArgument = None,
) -> None:
    """Problems first, with what to do; one line per job (state, last run, next run); the
    data. Plain text when not on a terminal (cron logs, scripts).

    Exit 0 healthy, 1 unhealthy (each reason named), 3 database unreachable.
    """
    from saathii_ops.scheduling.schedule_target import running_target
    from saathii_ops.status import collect as status_service

    app = app_context(ctx)
    if app.json_output and output_format is Format.prometheus:
        raise UsageError("--json and --format prometheus exclude each other: choose one")
    if metrics_file is not None and output_format is not Format.prometheus:
        raise UsageError("--metrics-file writes the Prometheus text: add --format prometheus")
    console = stdout_console()
    crontab = targets.installed_target(crontab_file)

    def collect() -> StatusReport:
        return status_service.collect(
            app.engine,
            app.settings,
            now=app.now,
            crontab=crontab,
            schedule_target=running_target(app.config_file, *app.database_url_and_source),
            database_source=app.database_source,
        )

    if seconds is not None and not watch:
        raise UsageError(f"{seconds:g} seconds: say --watch {seconds:g} to refresh that often")
    if watch:
        if app.json_output or output_format is not Format.text:
            raise UsageError("--watch shows the screen for people: not with --json or --format")
        if not console.is_terminal:
            raise UsageError("--watch refreshes a terminal: run it on one (or drop --watch)")
        watch_status(console, collect, seconds=seconds or WATCH_SECONDS, verbose=app.verbose)
        return
    report = collect()
    _show(
        console,
        report,
        output_format,
        metrics_file,
        json_output=app.json_output,
        verbose=app.verbose,
    )
    finish(report)


def _show(
    console: Console,
    report: StatusReport,
    output_format: Format,
    metrics_file: Path | None,
    *,
    json_output: bool,
    verbose: bool,
) -> None:
    """The report as asked: for monitors (--json, Prometheus) even of a database found
    down; for people, the screen."""
    if not report.database.reachable:
        # the one line every command gives; monitors still get a document saying "down"
        typer.echo(f"error: {mask_secrets(report.database.error or '')}", err=True)
    if json_output:
        emit_json(console, report)
    elif output_format is Format.prometheus and metrics_file is not None:
        write_textfile(metrics_file, prometheus_text(report))
    elif output_format is Format.prometheus:
        console.file.write(prometheus_text(report))
    elif report.database.reachable:
        render_status(console, report, verbose=verbose)
