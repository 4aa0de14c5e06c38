"""The output layer for the jobs' state: the `status` screen, `jobs list` and a pause."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Console

from saathii_ops.render import emit_json, format_value, render_mapping, render_rows

if TYPE_CHECKING:
    from saathii_ops.services.job_control import JobState, PauseReport
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


def render_jobs(console: Console, states: list[JobState], *, json_output: bool) -> None:
    """`jobs list`: each job's schedule, pause switch and last run."""
    if json_output:
        emit_json(console, states)
        return
    rows = [
        {
            "job": state.job,
            "schedule": state.schedule
            + ("" if state.timezone == "server" else f" ({state.timezone})"),
            "paused": f"since {state.paused_at:%Y-%m-%d %H:%M} by {state.paused_by}"
            if state.paused_at
            else "no",
            "last run": _last_run(state),
        }
        for state in states
    ]
    render_rows(console, "jobs", rows)


def _last_run(state: JobState) -> str:
    if state.last_started_at is None:
        return "never"
    outcome = state.last_outcome or ""
    if state.last_reason:
        outcome += f" ({state.last_reason})"
    text = f"{outcome} at {state.last_started_at:%Y-%m-%d %H:%M:%S}"
    return f"{text}: {state.last_error}" if state.last_error else text


def render_pause(console: Console, report: PauseReport, *, json_output: bool) -> None:
    """`jobs pause | resume`: the job's switch, and whether it was already so."""
    if json_output:
        emit_json(console, report)
        return
    state = "paused" if report.paused else "running"
    already = " (it already was)" if report.was_paused == report.paused else ""
    render_mapping(
        console,
        f"{report.job}: {state}{already}",
        {"changed_at": report.changed_at, "changed_by": report.changed_by},
    )
