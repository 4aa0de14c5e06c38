"""`saathii-ops badges assign | show`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Annotated

import typer

from saathii_ops.cli.common import (
    DryRunOption,
    JsonOption,
    app_context,
    read_only,
    run_registered,
    show_run,
)
from saathii_ops.cli.days import EARLIEST_DAY, LATEST_DAY
from saathii_ops.cli.help import WholeHelpGroup
from saathii_ops.errors import UsageError
from saathii_ops.output import render
from saathii_ops.runtime.registry import get_job

app = typer.Typer(
    cls=WholeHelpGroup,
    help="Listener badges: the daily badge that sets a listener's earning rates.",
    no_args_is_help=True,
)


DATE_FORMAT = {"formats": ["%Y-%m-%d"], "metavar": "YYYY-MM-DD"}
DateOption = Annotated[
    datetime | None,
    typer.Option(
        "--date", **DATE_FORMAT, help="The badge date; default: today in the business timezone."
    ),
]
FromOption = Annotated[
    datetime | None,
    typer.Option("--from", **DATE_FORMAT, help="Backfill: the first badge date (with --to)."),
]
ToOption = Annotated[
    datetime | None,
    typer.Option("--to", **DATE_FORMAT, help="Backfill: the last badge date, included."),
]


# One run assigns at most a year of badges: a longer backfill is several runs, each one
# transaction that holds the job's lock only so long.
MAX_BACKFILL_DAYS = 366


def target_dates(
    day: datetime | None, first: datetime | None, last: datetime | None
) -> list[date] | None:
    """The badge dates the options name; None for the default (today, known only at `now`)."""
    if day is not None and (first is not None or last is not None):
        raise UsageError("give either --date or --from/--to, not both")
    if (first is None) != (last is None):
        raise UsageError("--from and --to go together")
    for option, value in (("--date", day), ("--from", first), ("--to", last)):
        if value is not None:
            check_badge_date(option, value.date())
    if day is not None:
        return [day.date()]
    if first is None or last is None:
        return None
    if first > last:
        raise UsageError(f"--from {first.date()} is after --to {last.date()}")
    days = (last - first).days + 1
    if days > MAX_BACKFILL_DAYS:
        raise UsageError(
            f"--from {first.date()} --to {last.date()} is {days} days; one run backfills at "
            f"most {MAX_BACKFILL_DAYS}: run it once for each stretch of up to "
            f"{MAX_BACKFILL_DAYS} days"
        )
    return [first.date() + timedelta(days=n) for n in range(days)]


def check_badge_date(option: str, day: date) -> None:
    # the badge of D counts the minutes of D - 1
    if not EARLIEST_DAY + timedelta(days=1) <= day <= LATEST_DAY:
        raise UsageError(
            f"{option} {day} is out of range: give a date from "
            f"{EARLIEST_DAY + timedelta(days=1)} to {LATEST_DAY}"
        )


@contextmanager
def backfill_progress(days: int) -> Iterator[Callable[[date], None] | None]:
    """A progress bar over a backfill's dates, on a terminal only (on stderr: stdout
    stays the report); yields the per-date callback, or None for no bar."""
    from rich.progress import Progress

    console = render.stderr_console()
    if days < 2 or not console.is_terminal:
        yield None
        return
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("assigning badges", total=days)
        yield lambda day: progress.update(task, advance=1, description=f"badges for {day}")


@app.command(help=get_job("badges-assign").help)
def assign(
    ctx: typer.Context,
    day: DateOption = None,
    first: FromOption = None,
    last: ToOption = None,
    dry_run: DryRunOption = False,
    json_output: JsonOption = False,
) -> None:
    from saathii_ops.jobs.badges import AssignOptions

    app = app_context(ctx)
    dates = target_dates(day, first, last)
    # the bar only while the job runs: its result is shown after
    with backfill_progress(len(dates) if dates else 1) as on_date_done:
        result = run_registered(
            app, "badges-assign", dry_run=dry_run, options=AssignOptions(dates, on_date_done)
        )
    show_run(app, result)


@app.command()
def show(
    ctx: typer.Context,
    day: DateOption = None,
    listener: Annotated[
        int | None, typer.Option("--listener", metavar="ID", help="Only this listener.")
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """List the badges and rates of a date (default: today in the business timezone)."""
    from saathii_ops.jobs import badges
    from saathii_ops.jobs.badge_listing import listing

    app = app_context(ctx)
    if day is not None:
        check_badge_date("--date", day.date())
    with read_only(app) as (session, now):
        badge_date = day.date() if day is not None else badges.business_date(now, app.settings)
        result = listing(session, badge_date, listener)
    who = f"listener {listener}" if listener is not None else "every listener"
    title = f"listener badges for {badge_date} ({who})"
    render.show(render.stdout_console(), result, json_output=app.json_output, title=title)
