"""The output layer for the jobs' state: the `status` screen, `jobs list` and a pause."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from saathii_ops import formatting
from saathii_ops.render import emit_json, format_value, render_mapping, render_rows

if TYPE_CHECKING:
    from saathii_ops.services.job_control import HistoryReport, JobState, PauseReport, RunRecord
    from saathii_ops.services.status import JobHealth, StatusReport

# a run made with --now: its "now" is shown beside the time it really ran
AS_OF_SHOWN = timedelta(minutes=1)


def render_status(console: Console, report: StatusReport) -> None:
    """The status for people: the database, the jobs, the data, then each problem named."""
    verdict = "healthy" if report.healthy else f"UNHEALTHY ({len(report.problems)} problems)"
    database = report.database
    header: dict[str, Any] = {
        "database": f"{database.url} (from {database.source})" if database.source else database.url,
        "reachable": "yes" if database.reachable else "no",
        "server_version": database.server_version,
    }
    if report.schema is not None:
        at_head = "at head" if report.schema.at_head else f"head is {report.schema.head}"
        header["schema"] = f"{report.schema.current or 'none'} ({at_head})"
    header["crontab"] = report.crontab or "none found (scheduled: unknown)"
    render_mapping(console, f"status at {format_value(report.now)}: {verdict}", header)
    if report.jobs:
        render_rows(console, "jobs", [_job_row(job) for job in report.jobs])
    if report.data is not None:
        figures = {
            f.metadata["description"]: getattr(report.data, f.name)
            for f in dataclasses.fields(report.data)
        }
        render_mapping(console, f"data (badge date {report.badge_date})", figures)
    if report.problems:
        console.print("problems:")
        for problem in report.problems:
            console.print(f"  - {problem}", markup=False)


def _job_row(job: JobHealth) -> dict[str, str]:
    if job.last_started_at is None:
        last_run = "never run"
    else:
        outcome = job.last_outcome or ""
        if job.last_reason:
            outcome += f" ({job.last_reason})"
        last_run = f"{outcome} at {job.last_started_at:%Y-%m-%d %H:%M:%S}"
        if job.last_duration_seconds is not None:
            last_run += f" in {job.last_duration_seconds:.1f} s"
        if job.last_run_now and abs(job.last_run_now - job.last_started_at) > AS_OF_SHOWN:
            last_run += f" (--now {job.last_run_now:%Y-%m-%d %H:%M:%S})"
        if job.last_error:
            last_run += f": {job.last_error}"
    flags = [
        flag
        for flag, on in (
            ("OVERDUE", job.overdue),
            ("LAST RUN FAILED", job.last_run_failed),
            ("paused", job.paused),
            ("never run", job.never_run),
        )
        if on
    ]
    scheduled = {True: "yes", False: "no", None: "unknown"}[job.scheduled]
    return {
        "job": job.job,
        "schedule": f"{job.schedule} ({job.timezone})",
        "scheduled": scheduled,
        "paused": f"since {job.paused_at:%Y-%m-%d %H:%M} by {job.paused_by}"
        if job.paused and job.paused_at
        else "no",
        "last_run": last_run,
        "counts": " ".join(f"{k}={v}" for k, v in (job.last_counts or {}).items()) or "-",
        "last_failure": f"{job.last_failed_at:%Y-%m-%d %H:%M:%S}: {job.last_failure_error}"
        if job.last_failed_at
        else "-",
        "next_run": f"{job.next_run_at:%Y-%m-%d %H:%M} UTC",
        "state": ", ".join(flags) or "ok",
    }


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


def styled_outcome(outcome: str | None, reason: str | None) -> Text:
    return Text(outcome_text(outcome, reason), style=OUTCOME_STYLES.get(outcome or "", ""))


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
    if abs(run.run_now - run.started_at) > AS_OF_SHOWN:
        return f" (as of --now {formatting.moment(run.run_now)})"
    return ""


def _details(run: RunRecord, *, verbose: bool) -> str:
    text = formatting.counts(run.counts, zeros=verbose)
    if run.error:
        text = f"error: {run.error}" if text in ("-", "all counts 0") else f"{text}; {run.error}"
    return text + _as_of(run)


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
