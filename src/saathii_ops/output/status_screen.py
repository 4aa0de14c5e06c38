"""The output layer for `status`: the screen for people on a terminal (with what to do
about each finding, and the commands to run), plain text elsewhere, `--watch`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.segment import Segment, Segments
from rich.style import Style
from rich.table import Table
from rich.text import Text

from saathii_ops.output import text as formatting
from saathii_ops.output.jobs_screen import AS_OF_SHOWN, outcome_text, paused_since
from saathii_ops.output.render import format_value, render_mapping, render_rows

if TYPE_CHECKING:
    from saathii_ops.status.findings import Finding
    from saathii_ops.status.report import JobHealth, StatusReport


def render_status(console: Console, report: StatusReport, *, verbose: bool = False) -> None:
    """On a terminal, the screen for people (`status_screen`); else plain text for cron
    logs and scripts: the database, the jobs, the data, then each problem named."""
    if console.is_terminal:
        # wrapped at the terminal's width (the console soft-wraps for plain text)
        console.print(status_screen(report, verbose=verbose), soft_wrap=False)
        return
    database = report.database
    header: dict[str, Any] = {
        "database": f"{database.url} (from {database.source})" if database.source else database.url,
        "reachable": "yes" if database.reachable else "no",
        "server_version": database.server_version,
    }
    if database.read_only:
        header["read_only"] = database.read_only
    if report.schema is not None:
        at_head = "at head" if report.schema.at_head else f"head is {report.schema.head}"
        header["schema"] = f"{report.schema.current or 'none'} ({at_head})"
    header["crontab"] = report.crontab or "none found (scheduled: unknown)"
    render_mapping(console, f"status at {format_value(report.now)}: {_verdict(report)}", header)
    if report.jobs:
        render_rows(console, "jobs", [_job_row(job) for job in report.jobs])
    if report.data is not None:
        figures = {
            f.metadata["description"]: getattr(report.data, f.name)
            for f in dataclasses.fields(report.data)
        }
        render_mapping(console, f"data (badge date {_badge_day(report)})", figures)
    if report.problems:
        console.print("problems:")
        for problem in report.problems:
            console.print(f"  - {problem}")


def watch_status(
    console: Console, collect: Callable[[], StatusReport], *, seconds: float, verbose: bool
) -> None:
    """`status --watch`: the screen, refreshed in place every `seconds` until Ctrl-C."""
    from rich.live import Live

    try:
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                report = collect()
                footer = Text(f"every {seconds:g} s; Ctrl-C stops", style="dim")
                frame = watch_frame(console, report, footer, verbose=verbose)
                live.update(frame, refresh=True)
                time.sleep(seconds)
    except KeyboardInterrupt:
        pass


def watch_frame(
    console: Console, report: StatusReport, footer: Text, *, verbose: bool
) -> RenderableType:
    """One refresh of `--watch`, as tall as the terminal at most (Live would cut what is
    taller, the footer first): the database and the footer whole at the bottom, the rest
    of the screen above them as far as it fits, and how many lines did not."""
    options = console.options
    bottom = console.render_lines(
        Group(Text(), _database_section(report), footer), options, pad=False
    )
    top = console.render_lines(_screen_above_database(report, verbose), options, pad=False)
    room = max(console.size.height - len(bottom), 0)
    if len(top) > room:
        kept = max(room - 1, 0)
        hidden = (
            f"… {formatting.plural(len(top) - kept, 'more line')}: a taller terminal shows them"
        )
        top = top[:kept] + ([[Segment(hidden, Style(dim=True))]] if room else [])
    segments: list[Segment] = []
    for n, line in enumerate(top + bottom):
        segments += [Segment.line()] if n else []
        segments += line
    return Segments(segments)


def _badge_day(report: StatusReport) -> str:
    """2026-11-29 in Asia/Kolkata: the business day the badges are of."""
    zone = f" in {report.business_timezone}" if report.business_timezone else ""
    return f"{report.badge_date}{zone}"


def _verdict(report: StatusReport) -> str:
    if report.healthy:
        return "healthy"
    return f"UNHEALTHY ({formatting.plural(len(report.problems), 'problem')})"


def _last_run_text(job: JobHealth) -> str:
    if job.last_started_at is None:
        return "never run"
    text = f"{outcome_text(job.last_outcome, job.last_reason)} at "
    text += formatting.moment(job.last_started_at)
    if job.last_duration_seconds is not None:
        text += f" in {formatting.duration(job.last_duration_seconds)}"
    if job.last_run_now and abs(job.last_run_now - job.last_started_at) > AS_OF_SHOWN:
        text += f" (as of --now {formatting.moment(job.last_run_now)})"
    if job.last_error:
        text += f": {job.last_error}"
    return text


def _flags(job: JobHealth) -> list[str]:
    return [
        flag
        for flag, on in (
            ("OVERDUE", job.overdue),
            ("LAST RUN FAILED", job.last_run_failed),
            ("paused", job.paused),
            ("never run", job.never_run),
        )
        if on
    ]


def _job_row(job: JobHealth) -> dict[str, str]:
    return {
        "job": job.job,
        "schedule": f"{job.schedule} ({job.timezone})",
        "scheduled": formatting.yes_no(job.scheduled),
        "paused": paused_since(job.paused_at, job.paused_by, job.paused_reason)
        if job.paused
        else "no",
        "last_run": _last_run_text(job),
        "counts": formatting.counts(job.last_counts, zeros=True),
        "last_failure": f"{formatting.moment(job.last_failed_at)}: {job.last_failure_error}"
        if job.last_failed_at
        else "-",
        "next_run": formatting.minute(job.next_run_at),
        "state": ", ".join(_flags(job)) or "ok",
    }


# --- what to do -------------------------------------------------------------------


def what_to_do(finding: Finding) -> str | None:
    """What the operator does about a finding, with the commands to run; None: nothing
    to add to the problem itself."""
    from saathii_ops.status import findings as found

    match finding:
        case found.DatabaseReadOnly():
            return "point saathii-ops at the primary (a writable database)"
        case found.JobOverdue(job=job):
            run_it = f"`saathii-ops {job.command}` runs it now"
            if job.scheduled:
                history = f"`saathii-ops jobs history {job.job}`"
                return f"cron has it: see cron's log and {history}; {run_it}"
            return f"`saathii-ops cron install` schedules it; {run_it}"
        case found.JobFailed(job=job):
            return (
                f"`saathii-ops jobs history {job.job} --failed` lists its failures; "
                f"`saathii-ops -v {job.command} --dry-run` shows the traceback"
            )
        case found.JobExited1(job=job):
            return f"`saathii-ops {job.command} --dry-run` names each"
        case found.BillingBehind(stalled=found.Stalled.PAUSED):
            resume = f"`saathii-ops jobs resume {found.BILLING_JOB}`"
            return f"{resume}: its next run bills what is owed"
        case found.BillingBehind():
            return "`saathii-ops coins deduct` bills them now"
        case found.UnbillableCalls():
            return "docs/running-beside-the-app.md says what to do with each kind"
        case found.PausedWithWork(job=job):
            return f"`saathii-ops jobs resume {job.job}`: its next run does it"
        case found.NoBadgeForToday():
            return "`saathii-ops badges assign` assigns today's badges now"
    return None


# --- the screen for people ----------------------------------------------------------

STATE_STYLES = {
    "ok": "green",
    "OVERDUE": "bold red",
    "FAILED": "bold red",
    "exit 1": "red",
    "paused": "yellow",
    "never run": "dim",
}
# figures that are a problem (or a warning) when not zero
ALARMING_FIGURES = {"billing_behind_calls", "unbillable_calls", "negative_balance_wallets"}


def status_screen(report: StatusReport, *, verbose: bool = False) -> RenderableType:
    """The verdict and each problem with what to do, one line per job (its name whole at 80
    columns: state, last run "3 min ago, 0.6 s", next run), the data's figures, then the
    database; `verbose`: each job in full as well."""
    return Group(_screen_above_database(report, verbose), Text(), _database_section(report))


def _screen_above_database(report: StatusReport, verbose: bool) -> RenderableType:
    verdict = Text()
    if report.healthy:
        verdict.append("healthy", style="bold green")
    else:
        verdict.append(_verdict(report), style="bold red")
    verdict.append(f"  status at {formatting.moment(report.now)}")
    parts: list[RenderableType] = [verdict]
    if report.findings:
        parts.append(_findings(report.findings))
    if report.jobs:
        parts += [Text(), _jobs_table(report)]
        for job in report.jobs:
            if job.paused:
                since = paused_since(job.paused_at, job.paused_by, job.paused_reason)
                parts.append(Text(f"{job.job} is paused {since}", style="yellow"))
    if report.data is not None:
        parts += [Text(), Text(f"data (badge date {_badge_day(report)})", style="bold")]
        figures = Table.grid(padding=(0, 1))
        figures.add_column(justify="right", no_wrap=True)
        figures.add_column()
        for f in dataclasses.fields(report.data):
            value = getattr(report.data, f.name)
            style = "bold red" if value and f.name in ALARMING_FIGURES else ""
            figures.add_row(Text(f"{value:,}", style=style), f.metadata["description"])
        parts.append(figures)
    if verbose:
        for job in report.jobs:
            parts += [Text(), _job_detail(job)]
    return Group(*parts)


def _findings(findings: list[Finding]) -> Table:
    """Each problem, and under it what to do."""
    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column()
    for finding in findings:
        table.add_row(Text("✗", style="bold red"), Text(finding.problem))
        todo = what_to_do(finding)
        if todo:
            table.add_row("", Text(f"→ {todo}", style="cyan"))
    return table


def _jobs_table(report: StatusReport) -> Table:
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
    table.add_column("job", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("last run")
    table.add_column("next run")
    for job in report.jobs:
        table.add_row(
            job.job, _state(job), _last_run_short(job, report), _next_run_short(job, report)
        )
    return table


def _state(job: JobHealth) -> Text:
    states = []
    if job.overdue:
        states.append("OVERDUE")
    if job.last_run_failed:
        states.append("FAILED")
    if job.last_run_exited_1:
        states.append("exit 1")
    if job.paused:
        states.append("paused")
    if job.never_run:
        states.append("never run")
    text = Text()
    for n, state in enumerate(states or ["ok"]):
        if n:
            text.append(", ")
        text.append(state, style=STATE_STYLES[state])
    return text


def _last_run_short(job: JobHealth, report: StatusReport) -> str:
    """3 min ago, 0.6 s (relative to the instant the run worked as of)."""
    if job.last_run_now is None:
        return "never"
    text = formatting.relative(job.last_run_now, report.now)
    if job.last_duration_seconds is not None:
        text += f", {formatting.duration(job.last_duration_seconds)}"
    if job.last_outcome == "skipped":
        text += f" (skipped: {job.last_reason})" if job.last_reason else " (skipped)"
    return text


def _next_run_short(job: JobHealth, report: StatusReport) -> str:
    """in 4 min; 18:31 UTC; 2026-12-04 01:00 UTC"""
    ahead = job.next_run_at - report.now
    if ahead < timedelta(hours=1):
        return formatting.relative(job.next_run_at, report.now)
    if ahead < timedelta(hours=24):
        return f"{job.next_run_at:%H:%M} UTC"
    return formatting.minute(job.next_run_at)


def _job_detail(job: JobHealth) -> Table:
    detail = Table.grid(padding=(0, 1))
    detail.add_column(style="bold", no_wrap=True)
    detail.add_column()
    row = _job_row(job)
    detail.add_row(Text(job.job, style="bold"), _state(job))
    for key in ("schedule", "scheduled", "paused", "last_run", "counts", "last_failure"):
        detail.add_row(f"  {key.replace('_', ' ')}", row[key])
    detail.add_row("  due at", formatting.moment(job.due_at))
    detail.add_row("  next run", formatting.moment(job.next_run_at))
    return detail


def _database_section(report: StatusReport) -> Table:
    """The database (its URL whole, wrapped after its separators when it is longer than
    a line), the schema, and where the cron block was looked for."""
    database = report.database
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="dim")
    grid.add_column(style="dim")
    source = f" (from {database.source})" if database.source else ""
    grid.add_row("database", Breakable(database.url + source))
    if database.server_version:
        grid.add_row("server", database.server_version)
    if database.read_only:
        grid.add_row(Text("READ-ONLY", style="bold red"), database.read_only)
    if report.schema is not None:
        at_head = "at head" if report.schema.at_head else f"head is {report.schema.head}"
        grid.add_row("schema", f"{report.schema.current or 'none'} ({at_head})")
    grid.add_row("crontab", Breakable(report.crontab or "none found (scheduled: unknown)"))
    return grid


class Breakable:
    """Text wrapped at its spaces and, in a word longer than a line (a URL, a path), after
    its separators (`output.text.wrap`): never cut, nor broken inside a name."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(formatting.longest_piece(self.text), len(self.text))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text("\n".join(formatting.wrap(self.text, options.max_width)))
