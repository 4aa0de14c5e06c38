"""The job registry: the one list that the runner, `demo`, `status` and `cron install` read.

Data only (name, command, schedule, business time, per host, whether it bills): which
service function runs a job is `wiring`'s business, resolved when the job runs, so that
reading the registry (the CLI, shell completion, `cron install`) imports no service."""

from __future__ import annotations

from dataclasses import dataclass

from saathii_ops.errors import UsageError


@dataclass(frozen=True)
class Job:
    name: str
    command: str
    schedule: str
    business_time: bool  # the schedule is read in the business timezone, not the server's
    # The job bills calls (coins_spent changes): the app's Redis call cache follows
    # after it commits (see wiring.after_commit).
    bills: bool = False
    # The job's work is each host's own (its log files): every host runs it, so its
    # lock is per host, not one for all hosts.
    per_host: bool = False

    def lock_name(self, host: str) -> str:
        return f"{self.name}@{host}" if self.per_host else self.name


JOBS: tuple[Job, ...] = (
    Job(
        name="coins-deduct",
        command="coins deduct",
        schedule="* * * * *",
        business_time=False,
        bills=True,
    ),
    Job(
        name="calls-cleanup",
        command="calls cleanup",
        schedule="*/10 * * * *",
        business_time=False,
        bills=True,
    ),
    Job(
        name="presence-cleanup",
        command="presence cleanup",
        schedule="*/5 * * * *",
        business_time=False,
    ),
    Job(
        name="badges-assign",
        command="badges assign",
        schedule="1 0 * * *",
        business_time=True,
    ),
    Job(
        name="logs-prune",
        command="logs prune",
        # 01:00 of the server's clock: housekeeping of the server's own files, with no
        # business meaning, so no conversion (badges-assign is the business-time job)
        schedule="0 1 * * *",
        business_time=False,
        per_host=True,
    ),
    Job(
        name="wallets-audit",
        command="wallets audit",
        schedule="0 * * * *",
        business_time=False,
    ),
)


def get_job(name: str) -> Job:
    for job in JOBS:
        if job.name == name:
            return job
    known = ", ".join(job.name for job in JOBS)
    raise UsageError(f"unknown job {name!r}; known jobs: {known}")
