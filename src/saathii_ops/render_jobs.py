"""Output of `jobs list | pause | resume | history` for people (`--json` is the reports
as they are)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from saathii_ops import formatting

if TYPE_CHECKING:
    from saathii_ops.services.job_control import HistoryReport, JobState, PauseReport, RunRecord

OUTCOME_STYLES = {"ok": "green", "failed": "bold red", "skipped": "yellow", "dry-run": "cyan"}
# a run made with --now: its "now" is shown beside the time it really ran
AS_OF_SHOWN_SECONDS = 60


def paused_since(at: datetime | None, by: str | None, reason: str | None) -> str:
    """since 2026-12-03 07:10:00 UTC by alice@ops-1: database maintenance"""
    since = formatting.moment(at) if at else "?"
    text = f"since {since} by {by or '?'}"
    return f"{text}: {reason}" if reason else text


def outcome_text(outcome: str | None, reason: str | None) -> str:
    """ok, ok (some rows failed), skipped (paused)."""
    text = outcome or "-"
    return f"{text} ({reason})" if reason else text


def styled_outcome(outcome: str | None, reason: str | None) -> Text:
    return Text(outcome_text(outcome, reason), style=OUTCOME_STYLES.get(outcome or "", ""))


def last_run(state: JobState) -> str:
    if state.last_started_at is None:
        return "never"
    text = f"{outcome_text(state.last_outcome, state.last_reason)} at "
    text += formatting.moment(state.last_started_at)
    return f"{text}: {state.last_error}" if state.last_error else text


def render_job_list(console: Console, states: list[JobState]) -> None:
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
        table = Table(title="jobs", title_justify="left")
        for column in ("job", "schedule", "paused", "last run"):
            table.add_column(column, no_wrap=column == "job")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    console.print("jobs:")
    for job, schedule, paused, last in rows:
        console.print(f"  job={job}  schedule={schedule}  paused={paused}  last run={last}")


def render_pause(console: Console, report: PauseReport) -> None:
    assert report.changed_at is not None
    job = report.job
    if report.paused:
        since = paused_since(report.changed_at, report.changed_by, report.reason)
        if report.was_paused:
            console.print(f"{job}: already paused {since} (nothing changed)", markup=False)
            return
        console.print(f"{job}: paused {since}", markup=False)
        console.print(
            f"  its runs are recorded as skipped, on every host, until "
            f"`saathii-ops jobs resume {job}`",
            markup=False,
        )
        return
    if not report.was_paused:
        console.print(f"{job}: not paused (nothing changed)", markup=False)
        return
    console.print(
        f"{job}: resumed at {formatting.moment(report.changed_at)} by {report.changed_by}",
        markup=False,
    )
    console.print(
        "  it had been paused "
        + paused_since(report.was_paused_at, report.was_paused_by, report.was_paused_reason),
        markup=False,
    )
    console.print(
        "  its next scheduled run does its work (`saathii-ops status` shows when)", markup=False
    )


def _as_of(run: RunRecord) -> str:
    if abs((run.run_now - run.started_at).total_seconds()) > AS_OF_SHOWN_SECONDS:
        return f" (as of --now {formatting.moment(run.run_now)})"
    return ""


def _details(run: RunRecord, *, verbose: bool) -> str:
    text = formatting.counts(run.counts, zeros=verbose)
    if run.error:
        text = f"error: {run.error}" if text in ("-", "all counts 0") else f"{text}; {run.error}"
    return text + _as_of(run)


def render_history(console: Console, report: HistoryReport, *, verbose: bool = False) -> None:
    what = f"runs of {report.job}" if report.job else "runs of every job"
    if report.failed_only:
        what = "failed " + what
    if not report.runs:
        console.print(f"no {what} recorded", markup=False)
        return
    shown = formatting.plural(len(report.runs), "run")
    title = f"{what}, newest first ({shown}; --limit {report.limit})"
    if console.is_terminal:
        table = Table(title=title, title_justify="left")
        table.add_column("started", no_wrap=True)
        if report.job is None:
            table.add_column("job", no_wrap=True)
        table.add_column("outcome")
        table.add_column("took", justify="right", no_wrap=True)
        table.add_column("counts / error")
        table.add_column("host")
        for run in report.runs:
            cells: list[str | Text] = [formatting.moment(run.started_at)]
            if report.job is None:
                cells.append(run.job)
            cells += [
                styled_outcome(run.outcome, run.reason),
                formatting.duration(run.duration_seconds),
                Text(_details(run, verbose=verbose), style="red" if run.error else ""),
                run.host,
            ]
            table.add_row(*cells)
        console.print(table)
        return
    console.print(f"{title}:", markup=False)
    width = max(len(run.job) for run in report.runs)
    for run in report.runs:
        job = f"  {run.job:<{width}}" if report.job is None else ""
        outcome = outcome_text(run.outcome, run.reason)
        console.print(
            f"  {formatting.moment(run.started_at)}{job}  {outcome}"
            f"  {formatting.duration(run.duration_seconds)}  host {run.host}"
            f"  {_details(run, verbose=verbose)}",
            markup=False,
        )
