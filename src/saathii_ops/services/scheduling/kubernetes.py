"""The schedule as Kubernetes CronJobs (`cron install --format kubernetes`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from saathii_ops.errors import UsageError
from saathii_ops.jobs import JOBS
from saathii_ops.services.scheduling.expressions import job_schedule, shortest_interval_seconds
from saathii_ops.settings import Settings, known_timezone

# Kubernetes checks CronJobs about every 10 s: a shorter starting deadline can miss every run.
LEAST_STARTING_DEADLINE_SECONDS = 10

LONGEST_ACTIVE_DEADLINE_SECONDS = 3600

SUCCESSFUL_JOBS_KEPT = 3

FAILED_JOBS_KEPT = 5  # failed pods keep their logs for whoever investigates


@dataclass(frozen=True)
class Deadlines:
    """A CronJob's deadlines, derived from its schedule's shortest interval: a run (its pod
    start included) is stopped before the next one is due, so that with concurrencyPolicy
    Forbid a stuck or Pending pod cannot block the job for ever; a run that could not start
    within half an interval is skipped (the next catches up, SPEC §4)."""

    active_seconds: int
    starting_seconds: int


def deadlines(interval_seconds: int) -> Deadlines:
    return Deadlines(
        active_seconds=min(interval_seconds * 9 // 10, LONGEST_ACTIVE_DEADLINE_SECONDS),
        starting_seconds=max(interval_seconds // 2, LEAST_STARTING_DEADLINE_SECONDS),
    )


def kubernetes_manifests(
    settings: Settings,
    *,
    image: str,
    secret: str | None,
    config_map: str | None,
    server_tz: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """One CronJob per job. Business-time jobs keep their expression and take the business
    timezone (exact across daylight saving time); the others run in `server_tz`.
    Configuration arrives by reference, as environment from a Secret and/or a ConfigMap."""
    if secret is None and config_map is None:
        raise UsageError(
            "--format kubernetes needs the configuration by reference: --secret NAME "
            "(holding SAATHII_DATABASE_URL) and/or --config-map NAME"
        )
    env_from: list[dict[str, Any]] = []
    if config_map is not None:
        env_from.append({"configMapRef": {"name": config_map}})
    if secret is not None:
        env_from.append({"secretRef": {"name": secret}})
    manifests = []
    for job in JOBS:
        expression = job_schedule(job, settings)
        timezone = settings.timezone if job.business_time else server_tz
        try:
            tz = known_timezone(timezone)
        except ValueError as exc:
            raise UsageError(f"--server-timezone: {exc}") from None
        limits = deadlines(shortest_interval_seconds(expression, tz, now))
        manifests.append(
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {
                    "name": f"saathii-ops-{job.name}",
                    "labels": {
                        "app.kubernetes.io/name": "saathii-ops",
                        "app.kubernetes.io/component": job.name,
                    },
                },
                "spec": {
                    "schedule": expression,
                    "timeZone": timezone,
                    # the database lock keeps pods apart too; Forbid spares the skipped runs
                    "concurrencyPolicy": "Forbid",
                    "startingDeadlineSeconds": limits.starting_seconds,
                    "successfulJobsHistoryLimit": SUCCESSFUL_JOBS_KEPT,
                    "failedJobsHistoryLimit": FAILED_JOBS_KEPT,
                    "jobTemplate": {
                        "spec": {
                            # no retries: the next scheduled run catches up on what was missed
                            "backoffLimit": 0,
                            "activeDeadlineSeconds": limits.active_seconds,
                            "template": {
                                "metadata": {
                                    "labels": {
                                        "app.kubernetes.io/name": "saathii-ops",
                                        "app.kubernetes.io/component": job.name,
                                    }
                                },
                                "spec": {
                                    "restartPolicy": "Never",
                                    "containers": [
                                        {
                                            "name": job.name,
                                            "image": image,
                                            "command": ["saathii-ops"],
                                            "args": job.command.split(),
                                            "envFrom": env_from,
                                        }
                                    ],
                                },
                            },
                        }
                    },
                },
            }
        )
    return manifests
