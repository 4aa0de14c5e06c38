"""`status --format prometheus`: the status in Prometheus' text exposition format.
prometheus_client is imported by the function that uses it, not at start-up."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client.core import GaugeMetricFamily, Metric

    from saathii_ops.status.report import JobHealth, StatusReport


def prometheus_text(report: StatusReport) -> str:
    """The status in Prometheus' text exposition format: one gauge family per figure,
    the jobs' labelled by job. Families of what is unknown (never run, no crontab,
    an unreachable database) are left out rather than given a made-up value."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

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
    if report.database.reachable:
        families.append(
            gauge(
                "database_read_only",
                "1 when no job can write to the database (read-only, or in recovery)",
                int(report.database.read_only is not None),
            )
        )
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


def write_textfile(path: Path, text: str) -> None:
    """Replace `path` with `text` at once (a temporary file renamed over it), so that
    node_exporter's textfile collector never reads half a file; the temporary file's
    dot-name does not match its `*.prom`."""
    import os
    import tempfile

    from saathii_ops.errors import UsageError

    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(temporary, 0o644)  # node_exporter runs as its own user
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        raise UsageError(f"cannot write the metrics file {path}: {exc.strerror}") from None


def _job_families(jobs: Sequence[JobHealth]) -> list[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    def family(name: str, documentation: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"saathii_ops_job_{name}", documentation, labels=["job"])

    scheduled = family("scheduled", "1 when the installed cron block runs the job")
    paused = family("paused", "1 when the job is paused on every host")
    never_run = family("never_run", "1 when the job has no recorded run")
    overdue = family("overdue", "1 when the job has missed its schedule")
    failed = family("last_run_failed", "1 when the job's last run failed")
    exit_code = family(
        "last_exit_code",
        "the exit code of the job's last run (1: failed, or ran and found something)",
    )
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
        if job.last_exit_code is not None:
            exit_code.add_metric(label, job.last_exit_code)
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
        exit_code,
        last_run,
        duration,
        last_failure,
        next_run,
        counts,
    ]
