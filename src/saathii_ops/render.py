"""The one place where reports become output: a Rich summary for people, plain text
under cron, or one JSON document for machines."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from rich.console import Console
from rich.table import Table

from saathii_ops.runner import RunResult
from saathii_ops.services.status import JobHealth, StatusReport

MAX_IDS_SHOWN = 20
MAX_ROWS_SHOWN = 50  # of a report's records, for people; --json has them all
# a run made with --now: its "now" is shown beside the time it really ran
AS_OF_SHOWN = timedelta(minutes=1)


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def to_jsonable(value: Any) -> Any:
    """Decimals become strings (exact to the paisa), times ISO-8601."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def emit_json(console: Console, data: Any) -> None:
    console.file.write(json.dumps(to_jsonable(data), indent=2) + "\n")


def format_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, list | tuple):
        if not value:
            return "-"
        shown = ", ".join(str(v) for v in value[:MAX_IDS_SHOWN])
        more = len(value) - MAX_IDS_SHOWN
        return f"{shown} (+{more} more)" if more > 0 else shown
    if value is None:
        return "-"
    return str(value)


def render_mapping(console: Console, title: str, data: Mapping[str, Any]) -> None:
    """Scalar fields as a two-column table; lists of records as tables of their own."""
    records = {k: v for k, v in data.items() if _is_records(v)}
    scalars = {k: v for k, v in data.items() if k not in records}
    if console.is_terminal:
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column()
        for key, value in scalars.items():
            table.add_row(key.replace("_", " "), format_value(value))
        console.print(table)
    else:
        console.print(title)
        for key, value in scalars.items():
            console.print(f"  {key}: {format_value(value)}")
    for key, rows in records.items():
        render_rows(console, key.replace("_", " "), rows[:MAX_ROWS_SHOWN])
        if len(rows) > MAX_ROWS_SHOWN:
            console.print(f"  (+{len(rows) - MAX_ROWS_SHOWN} more; --json shows all)")


def render_rows(console: Console, title: str, rows: Sequence[Any]) -> None:
    dicts = [to_jsonable(row) for row in rows]
    columns = list(dicts[0]) if dicts else []
    if console.is_terminal:
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column.replace("_", " "))
        for row in dicts:
            table.add_row(*(format_value(row[c]) for c in columns))
        console.print(table)
    else:
        console.print(f"{title}:")
        for row in dicts:
            console.print("  " + "  ".join(f"{c}={format_value(row[c])}" for c in columns))


def _is_records(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, Mapping) or dataclasses.is_dataclass(v) for v in value)
    )


def render_run(
    console: Console, result: RunResult, *, json_output: bool, database: str | None = None
) -> None:
    """`database`: the line naming the database the run used and where its URL came from."""
    header = {
        "job": result.job,
        "database": database,
        "outcome": result.outcome,
        "reason": result.reason,
        "now": result.now,
        "duration_seconds": round(result.duration_seconds, 3),
        "error": result.error,
        "warning": result.warning,
    }
    if json_output:
        body = dict(header, report=to_jsonable(result.report) if result.report else None)
        if result.after_commit is not None:
            body["after_commit"] = to_jsonable(result.after_commit)
        emit_json(console, body)
        return
    title = f"{result.job}: {result.outcome}"
    if result.outcome == "dry-run":
        title += " (nothing was changed)"
    summary: dict[str, Any] = {k: v for k, v in header.items() if v is not None}
    if result.report is not None:
        summary.update(dataclasses.asdict(result.report))
    render_mapping(console, title, summary)
    if result.after_commit is not None:
        render_mapping(console, "after commit", dataclasses.asdict(result.after_commit))


# --- status ---------------------------------------------------------------------------


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


def prometheus_text(report: StatusReport) -> str:
    """The status in Prometheus' text exposition format: one gauge family per figure,
    the jobs' labelled by job. Families of what is unknown (never run, no crontab,
    an unreachable database) are left out rather than given a made-up value."""

    def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"saathii_ops_{name}", documentation, value=value)

    families: list[Metric] = [
        gauge("up", "1 when the database answered", int(report.database.reachable)),
        gauge("healthy", "1 when status found nothing unhealthy", int(report.healthy)),
        gauge(
            "problems",
            "unhealthy findings, each named by `saathii-ops status`",
            len(report.problems),
        ),
    ]
    if report.schema is not None:
        families.append(
            gauge(
                "schema_at_head",
                "1 when the schema is at the latest revision",
                int(report.schema.at_head),
            )
        )
    if report.jobs:
        families += _job_families(report.jobs)
    if report.data is not None:
        for f in dataclasses.fields(report.data):
            families.append(gauge(f.name, f.metadata["description"], getattr(report.data, f.name)))

    class Snapshot:
        def collect(self) -> Iterable[Metric]:
            return [family for family in families if family.samples]

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Snapshot())
    return generate_latest(registry).decode()


def _job_families(jobs: Sequence[JobHealth]) -> list[Metric]:
    def family(name: str, documentation: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"saathii_ops_job_{name}", documentation, labels=["job"])

    scheduled = family("scheduled", "1 when the installed cron block runs the job")
    paused = family("paused", "1 when the job is paused on every host")
    never_run = family("never_run", "1 when the job has no recorded run")
    overdue = family("overdue", "1 when the job has missed its schedule")
    failed = family("last_run_failed", "1 when the job's last run failed")
    last_run = family("last_run_timestamp_seconds", "when the job's last run started")
    duration = family("last_run_duration_seconds", "how long the job's last run took")
    last_failure = family(
        "last_failure_timestamp_seconds", "when the job's last failed run started"
    )
    next_run = family("next_run_timestamp_seconds", "when the job's schedule fires next")
    counts = GaugeMetricFamily(
        "saathii_ops_job_last_run_count",
        "the counts the job's last run recorded",
        labels=["job", "count"],
    )
    for job in jobs:
        label = [job.job]
        if job.scheduled is not None:
            scheduled.add_metric(label, int(job.scheduled))
        paused.add_metric(label, int(job.paused))
        never_run.add_metric(label, int(job.never_run))
        overdue.add_metric(label, int(job.overdue))
        failed.add_metric(label, int(job.last_run_failed))
        if job.last_started_at is not None:
            last_run.add_metric(label, job.last_started_at.timestamp())
        if job.last_duration_seconds is not None:
            duration.add_metric(label, job.last_duration_seconds)
        if job.last_failed_at is not None:
            last_failure.add_metric(label, job.last_failed_at.timestamp())
        next_run.add_metric(label, job.next_run_at.timestamp())
        for name, value in (job.last_counts or {}).items():
            counts.add_metric([job.job, name], value)
    return [
        scheduled,
        paused,
        never_run,
        overdue,
        failed,
        last_run,
        duration,
        last_failure,
        next_run,
        counts,
    ]
