"""The output layer for the jobs' state: `status` (the screen for people on a terminal,
plain text elsewhere, `--watch`), `jobs list`, a pause or resume, `jobs history`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from saathii_ops.output import text as formatting
from saathii_ops.output.render import emit_json, format_value, render_mapping, render_rows

if TYPE_CHECKING:
    from saathii_ops.jobs.job_control import HistoryReport, JobState, PauseReport, RunRecord
    from saathii_ops.status.collect import JobHealth, StatusReport

# a run made with --now: its "now" is shown beside the time it really ran
AS_OF_SHOWN = timedelta(minutes=1)


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
                live.update(Group(status_screen(report, verbose=verbose), footer), refresh=True)
                time.sleep(seconds)
    except KeyboardInterrupt:
        pass


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
    parts: list[RenderableType] = []
    verdict = Text()
    if report.healthy:
        verdict.append("healthy", style="bold green")
    else:
        verdict.append(_verdict(report), style="bold red")
    verdict.append(f"  status at {formatting.moment(report.now)}")
    parts.append(verdict)
    if report.findings:
        problems = Table.grid(padding=(0, 1))
        problems.add_column(no_wrap=True)
        problems.add_column()
        for finding in report.findings:
            problems.add_row(Text("✗", style="bold red"), Text(finding.problem))
            if finding.todo:
                problems.add_row("", Text(f"→ {finding.todo}", style="cyan"))
        parts.append(problems)

    if report.jobs:
        parts.append(Text())
        parts.append(_jobs_table(report))
        paused = [job for job in report.jobs if job.paused]
        for job in paused:
            since = paused_since(job.paused_at, job.paused_by, job.paused_reason)
            parts.append(Text(f"{job.job} is paused {since}", style="yellow"))
    if report.data is not None:
        parts.append(Text())
        parts.append(Text(f"data (badge date {_badge_day(report)})", style="bold"))
        figures = Table.grid(padding=(0, 1))
        figures.add_column(justify="right", no_wrap=True)
        figures.add_column()
        for f in dataclasses.fields(report.data):
            value = getattr(report.data, f.name)
            style = "bold red" if value and f.name in ALARMING_FIGURES else ""
            figures.add_row(Text(f"{value:,}", style=style), f.metadata["description"])
        parts.append(figures)
    if verbose and report.jobs:
        for job in report.jobs:
            parts.append(Text())
            parts.append(_job_detail(job))
    parts.append(Text())
    parts.append(Text(_database_line(report), style="dim"))
    return Group(*parts)


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


def _database_line(report: StatusReport) -> str:
    database = report.database
    text = f"database {database.url}"
    if database.source:
        text += f" (from {database.source})"
    if database.server_version:
        text += f", server {database.server_version}"
    if database.read_only:
        text += f"; READ-ONLY ({database.read_only})"
    if report.schema is not None:
        at_head = "at head" if report.schema.at_head else f"head is {report.schema.head}"
        text += f"; schema {report.schema.current or 'none'} ({at_head})"
    text += f"; crontab: {report.crontab or 'none found (scheduled: unknown)'}"
    return text


# --- jobs ---------------------------------------------------------------------------

OUTCOME_STYLES = {"ok": "green", "failed": "bold red", "skipped": "yellow", "dry-run": "cyan"}


def paused_since(at: datetime | None, by: str | None, reason: str | None) -> str:
    """since 2026-12-03 07:10:00 UTC by alice@ops-1: database maintenance"""
    since = formatting.moment(at) if at else "?"
    text = f"since {since} by {by or '?'}"
    return f"{text}: {reason}" if reason else text


def outcome_text(outcome: str | None, reason: str | None) -> str:
    """ok, ok (some rows failed), skipped (paused)."""
    text = outcome or "-"
    return f"{text} ({reason})" if reason else text


def last_run(state: JobState) -> str:
    if state.last_started_at is None:
        return "never"
    text = f"{outcome_text(state.last_outcome, state.last_reason)} at "
    text += formatting.moment(state.last_started_at)
    return f"{text}: {state.last_error}" if state.last_error else text


def render_jobs(console: Console, states: list[JobState], *, json_output: bool) -> None:
    """`jobs list`: each job's schedule, pause switch (since when, by whom, why), last run."""
    if json_output:
        emit_json(console, states)
        return
    rows = [
        (
            state.job,
            state.schedule + ("" if state.timezone == "server" else f" ({state.timezone})"),
            paused_since(state.paused_at, state.paused_by, state.paused_reason)
            if state.paused
            else "no",
            last_run(state),
        )
        for state in states
    ]
    if console.is_terminal:
        # one line per job at 80 columns; a pause (who, why: any length) on a line of its own
        table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="bold")
        table.add_column("job", no_wrap=True)
        table.add_column("schedule", no_wrap=True)
        table.add_column("last run")
        for state, (job, schedule, paused, last) in zip(states, rows, strict=True):
            style = OUTCOME_STYLES.get(state.last_outcome or "", "")
            table.add_row(job, schedule, Text(last, style=style))
            if state.paused:
                table.add_row("", "", Text(f"paused {paused}", style="yellow"))
        console.print(table, soft_wrap=False)
        return
    console.print("jobs:")
    for job, schedule, paused, last in rows:
        console.print(f"  job={job}  schedule={schedule}  paused={paused}  last run={last}")


def render_pause(console: Console, report: PauseReport, *, json_output: bool) -> None:
    """`jobs pause | resume`: what changed, or that nothing did."""
    if json_output:
        emit_json(console, report)
        return
    assert report.changed_at is not None
    job = report.job
    if report.paused:
        since = paused_since(report.changed_at, report.changed_by, report.reason)
        if report.was_paused:
            console.print(f"{job}: already paused {since} (nothing changed)")
            return
        console.print(f"{job}: paused {since}")
        console.print(
            f"  its runs are recorded as skipped, on every host, until "
            f"`saathii-ops jobs resume {job}`",
        )
        return
    if not report.was_paused:
        console.print(f"{job}: not paused (nothing changed)")
        return
    console.print(
        f"{job}: resumed at {formatting.moment(report.changed_at)} by {report.changed_by}",
    )
    console.print(
        "  it had been paused "
        + paused_since(report.was_paused_at, report.was_paused_by, report.was_paused_reason),
    )
    console.print("  its next scheduled run does its work (`saathii-ops status` shows when)")


def _as_of(run: RunRecord) -> str:
    if abs(run.run_now - run.started_at) > AS_OF_SHOWN:
        return f" (as of --now {formatting.moment(run.run_now)})"
    return ""


def _details(run: RunRecord, *, verbose: bool, none: str = "-") -> str:
    """A run's counts (or `none`) and error, and the instant it worked as of."""
    text = formatting.counts(run.counts, zeros=verbose) if run.counts else none
    if run.error:
        text = f"error: {run.error}" if text in (none, "all counts 0") else f"{text}; {run.error}"
    return (text + _as_of(run)).strip()


def render_history(
    console: Console, report: HistoryReport, *, json_output: bool, verbose: bool = False
) -> None:
    """`jobs history`: one line per run (a table on a terminal); `verbose`: zero counts too."""
    if json_output:
        emit_json(console, report)
        return
    what = f"runs of {report.job}" if report.job else "runs of every job"
    if report.failed_only:
        what = "failed " + what
    if not report.runs:
        console.print(f"no {what} recorded")
        return
    shown = formatting.plural(len(report.runs), "run")
    title = f"{what}, newest first ({shown}; --limit {report.limit})"
    if console.is_terminal:
        # one line per run at 80 columns; its host, counts or error indented on the next
        console.print(Text(title, style="bold"), soft_wrap=False)
        job_width = max(len(run.job) for run in report.runs)
        outcome_width = max(len(outcome_text(run.outcome, run.reason)) for run in report.runs)
        for run in report.runs:
            line = Text(formatting.moment(run.started_at))
            if report.job is None:
                line.append(f"  {run.job:<{job_width}}")
            line.append("  ")
            outcome = f"{outcome_text(run.outcome, run.reason):<{outcome_width}}"
            line.append(outcome, style=OUTCOME_STYLES.get(run.outcome, ""))
            line.append(f"  {formatting.duration(run.duration_seconds):>8}")
            details = _details(run, verbose=verbose, none="")
            separator = " " if details.startswith("(") else ": "
            detail = Text(f"host {run.host}" + (separator + details if details else ""))
            if run.error:
                detail.stylize("red")
            console.print(line, soft_wrap=False)
            console.print(Padding(detail, (0, 0, 0, 4)), soft_wrap=False)
        return
    console.print(f"{title}:")
    width = max(len(run.job) for run in report.runs)
    for run in report.runs:
        job = f"  {run.job:<{width}}" if report.job is None else ""
        outcome = outcome_text(run.outcome, run.reason)
        console.print(
            f"  {formatting.moment(run.started_at)}{job}  {outcome}"
            f"  {formatting.duration(run.duration_seconds)}  host {run.host}"
            f"  {_details(run, verbose=verbose)}",
        )
