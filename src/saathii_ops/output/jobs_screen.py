"""The output layer for the jobs' own commands: `jobs list`, a pause or resume, `jobs
history` (and the words for a run and a pause that `status`'s screen shares)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from saathii_ops.output import text as formatting
from saathii_ops.output.render import emit_json

if TYPE_CHECKING:
    from saathii_ops.jobs.job_control import HistoryReport, JobState, PauseReport, RunRecord

# a run made with --now: its "now" is shown beside the time it really ran
AS_OF_SHOWN = timedelta(minutes=1)

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
