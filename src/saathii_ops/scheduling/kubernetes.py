"""The schedule as Kubernetes CronJobs (`cron install --format kubernetes`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from saathii_ops.errors import UsageError
from saathii_ops.runtime.registry import JOBS, Job
from saathii_ops.scheduling.expressions import job_schedule, shortest_interval_seconds
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


# where every pod finds the config file of the ConfigMap
CONFIG_MOUNT = "/etc/saathii"
CONFIG_KEY = "ops.toml"
DEFAULT_CONFIG_MAP = "saathii-ops-config"
# settings that may hold a password: they belong in the Secret, never in the ConfigMap
SECRET_SETTINGS = ("database_url", "redis_url")
# A run is one process over one database transaction: a tenth of a core and 128 MiB are
# what billing and cleanup use on 100k calls (docs/performance.md); a badge backfill of
# 100k listeners peaks near 200 MB.
RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}
RUN_AS = 10001  # any non-root user: the jobs write nothing but /tmp
FINISHED_JOBS_KEPT_SECONDS = 3 * 24 * 3600  # finished Jobs (and their pods' logs): 3 days


def config_map_data(config_file: Path, secret: str | None) -> str:
    """The config file's text for the ConfigMap, as it is (every setting, its comments);
    refused when it holds a password, which belongs in the Secret."""
    import tomllib

    from saathii_ops.output.masking import mask_secrets

    text = config_file.read_text(encoding="utf-8")
    values = tomllib.loads(text)
    for key in SECRET_SETTINGS:
        value = values.get(key)
        if isinstance(value, str) and mask_secrets(value) != value:
            where = f"the Secret {secret}" if secret else "a Secret (--secret NAME)"
            raise UsageError(
                f"config file {config_file} holds a password in {key}, which would go into "
                f"the ConfigMap: put it in {where} as SAATHII_{key.upper()} and remove it "
                "from the file"
            )
    return text


def kubernetes_manifests(
    settings: Settings,
    *,
    image: str,
    secret: str | None,
    config_file: Path | None,
    config_map: str | None,
    server_tz: str,
    now: datetime,
) -> list[dict[str, Any]]:
    """A ConfigMap made from the config file (when there is one), then one CronJob per
    job. Each pod runs `saathii-ops --config` on the ConfigMap's file, mounted read-only,
    with the Secret's SAATHII_* variables (the database URL) in its environment.
    Business-time jobs keep their expression and take the business timezone (exact across
    daylight saving time); the others run in `server_tz`."""
    if secret is None and config_file is None:
        raise UsageError(
            "--format kubernetes needs the configuration by reference: --secret NAME "
            "(holding SAATHII_DATABASE_URL) and/or --config PATH (made a ConfigMap)"
        )
    if config_map is not None and config_file is None:
        raise UsageError("--config-map names the ConfigMap made from --config: give --config PATH")
    labels = {"app.kubernetes.io/name": "saathii-ops"}
    manifests: list[dict[str, Any]] = []
    pod = _PodConfig(
        args=[],
        volumes=[{"name": "tmp", "emptyDir": {}}],
        mounts=[{"name": "tmp", "mountPath": "/tmp"}],
        container_extra={},
    )
    if config_file is not None:
        config_map = config_map or DEFAULT_CONFIG_MAP
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": config_map, "labels": labels},
                "data": {CONFIG_KEY: config_map_data(config_file, secret)},
            }
        )
        pod.args = ["--config", f"{CONFIG_MOUNT}/{CONFIG_KEY}"]
        pod.volumes.append({"name": "config", "configMap": {"name": config_map}})
        pod.mounts.append({"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True})
    if secret is not None:
        pod.container_extra["envFrom"] = [{"secretRef": {"name": secret}}]
    for job in JOBS:
        expression = job_schedule(job, settings)
        timezone = settings.timezone if job.business_time else server_tz
        try:
            tz = known_timezone(timezone)
        except ValueError as exc:
            raise UsageError(f"--server-timezone: {exc}") from None
        limits = deadlines(shortest_interval_seconds(expression, tz, now))
        job_labels = {**labels, "app.kubernetes.io/component": job.name}
        manifests.append(_cron_job(job, expression, timezone, limits, job_labels, image, pod))
    return manifests


@dataclass
class _PodConfig:
    """What every job's pod shares: the config file's arguments, volumes and mounts, and
    the Secret's environment."""

    args: list[str]
    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]
    container_extra: dict[str, Any]


def _cron_job(
    job: Job,
    expression: str,
    timezone: str,
    limits: Deadlines,
    labels: dict[str, str],
    image: str,
    pod: _PodConfig,
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": f"saathii-ops-{job.name}", "labels": labels},
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
                    "ttlSecondsAfterFinished": FINISHED_JOBS_KEPT_SECONDS,
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": _pod_spec(job, image, pod),
                    },
                }
            },
        },
    }


def _pod_spec(job: Job, image: str, pod: _PodConfig) -> dict[str, Any]:
    return {
        "restartPolicy": "Never",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": job.name,
                "image": image,
                "command": ["saathii-ops"],
                "args": [*pod.args, *job.command.split()],
                **pod.container_extra,
                "resources": RESOURCES,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": pod.mounts,
            }
        ],
        "volumes": pod.volumes,
    }
