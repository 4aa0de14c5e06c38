"""`status`'s health rules (SPEC §11; the choices the SPEC leaves open:
docs/decisions.md#status): pure functions from what `status.collect` read to findings,
testable without a database.

- a job is overdue when it has run before, is not paused, and its last run worked as of
  an instant before F, the most recent firing of its schedule at or before now -
  OVERDUE_GRACE. "Worked as of" is the run's `run_now` (the database clock at the start
  of a scheduled run, equal to its started_at; the given instant of a `--now` run), so
  that `status --now T` judges runs made with `--now T` (the demo's) as the jobs saw
  them. A job that never ran is reported as never run, not as a problem: it may simply
  not be installed yet.
- a job whose last run failed;
- a job whose last run found rows it could not process or, for wallets-audit, anything
  wrong (the run exited 1: "some rows failed"), such as a billing run that skipped calls
  the app half-ended, or an audit that found a call the app ended again after we settled
  it;
- billing behind: ongoing calls that still owe coins for minutes that started before
  now - billing.BILLING_GRACE (the billing plan evaluated at that instant): coin
  deduction runs every minute, so owing for the current minute is normal;
- ongoing calls billing cannot bill (both jobs skip them, and coin deduction exits 1 on
  every run while its runs are recorded as 'ok');
- a paused job with work waiting (calls cleanup with calls to end, presence cleanup with
  users to mark, badges assign with listeners without today's badge);
- no badge for today once today's badges-assign firing (and the grace) has passed with no
  successful run as of it since, with the calls settled at basic rates for want of a
  badge row;
- a database no job can write to (read-only, or in recovery);
- the schema not at head (then the jobs and the data are not read: the queries need the
  head schema);
- the database unreachable (exit 3; the report still says so, for monitors).
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

from saathii_ops.billing.report import BillingReport
from saathii_ops.jobs import badges
from saathii_ops.jobs.wallet_audit import WalletAuditReport
from saathii_ops.reports import Report
from saathii_ops.settings import Settings
from saathii_ops.status.findings import (
    BADGES_JOB,
    BILLING_JOB,
    WAITING_WORK,
    BadgesMissed,
    BillingBehind,
    DatabaseReadOnly,
    Finding,
    JobExited1,
    JobFailed,
    JobOverdue,
    NoBadgeForToday,
    PausedWithWork,
    SchemaNotReady,
    Stalled,
    UnbillableCalls,
)
from saathii_ops.status.report import DataHealth, JobHealth

# A run starts a few seconds after its firing and takes a few more; two minutes
# absorb that (and a clock a little apart), while an every-minute job that stops
# firing is reported from its second missed firing on.
OVERDUE_GRACE = timedelta(minutes=2)


def report_counts(report: type[Report], *names: str) -> frozenset[str]:
    """`names` (every count of `report` when none is named), each checked to be a count
    of `report`: a count renamed there fails here, when status is imported, rather than
    dropping silently out of the problem that quotes it."""
    counts = {f.name for f in dataclasses.fields(report) if f.type == "int"}
    unknown = set(names) - counts
    if unknown:
        raise TypeError(f"{report.__name__} has no count {', '.join(sorted(unknown))}")
    return frozenset(names or counts)


# The counts of a run that name what made it exit 1, quoted by the problem: billing's
# skipped calls (coins-deduct, calls-cleanup) and every finding of the audit.
EXIT_1_COUNTS = report_counts(BillingReport, "skipped_calls", "half_ended_calls") | report_counts(
    WalletAuditReport
)


def is_overdue(*, paused: bool, last_run_now: datetime | None, due_at: datetime) -> bool:
    """Not paused, run before, and its last run worked as of an instant before F."""
    return not paused and last_run_now is not None and last_run_now < due_at


def judge(
    *,
    schema_problem: str | None,
    read_only: str | None,
    jobs: list[JobHealth],
    data: DataHealth | None,
    today: date | None,
    badges_done_at: datetime | None,
    settings: Settings,
) -> list[Finding]:
    """Every finding, in the order `status` lists them: the schema, the database, each
    job's runs, then the data (`data` None: not read)."""
    findings: list[Finding] = []
    if schema_problem is not None:
        findings.append(SchemaNotReady(schema_problem))
    if read_only is not None:
        findings.append(DatabaseReadOnly(read_only))
    findings += [finding for job in jobs for finding in job_findings(job)]
    if data is not None:
        assert today is not None
        findings += data_findings(data, jobs)
        findings += paused_with_work(data, jobs)
        findings += badge_findings(data, jobs, today, badges_done_at, settings)
    return findings


def job_findings(job: JobHealth) -> list[Finding]:
    findings: list[Finding] = []
    if job.overdue:
        findings.append(JobOverdue(job))
    if job.last_run_failed:
        findings.append(JobFailed(job))
    if job.last_run_exited_1:
        found = tuple(
            (name, value)
            for name, value in (job.last_counts or {}).items()
            if name in EXIT_1_COUNTS and value
        )
        findings.append(JobExited1(job, found))
    return findings


def _find(jobs: list[JobHealth], name: str) -> JobHealth | None:
    return next((job for job in jobs if job.job == name), None)


def data_findings(data: DataHealth, jobs: list[JobHealth]) -> list[Finding]:
    findings: list[Finding] = []
    if data.billing_behind_calls:
        coins_deduct = _find(jobs, BILLING_JOB)
        stalled = None if coins_deduct is None else billing_stalled(coins_deduct)
        findings.append(BillingBehind(data.billing_behind_calls, coins_deduct, stalled))
    if data.unbillable_calls:
        findings.append(UnbillableCalls(data.unbillable_calls))
    return findings


def billing_stalled(job: JobHealth) -> Stalled | None:
    """What status knows keeps coins-deduct from billing; None: nothing."""
    if job.paused:
        return Stalled.PAUSED
    if job.never_run:
        return Stalled.NEVER_RUN
    if job.last_run_failed:
        return Stalled.LAST_RUN_FAILED
    if job.overdue:
        return Stalled.OVERDUE
    if job.scheduled is False:
        return Stalled.NOT_SCHEDULED
    return None


def paused_with_work(data: DataHealth, jobs: list[JobHealth]) -> list[Finding]:
    """A paused job with work waiting: the work piles up on every host until it is resumed."""
    work_of = {work.job: work for work in WAITING_WORK}
    findings: list[Finding] = []
    for job in jobs:
        work = work_of.get(job.job)
        if job.paused and work is not None and (waiting := work.count(data)):
            findings.append(PausedWithWork(job, work, waiting))
    return findings


def badge_findings(
    data: DataHealth,
    jobs: list[JobHealth],
    today: date,
    done_at: datetime | None,
    settings: Settings,
) -> list[Finding]:
    """No badge for today once today's badges-assign firing is past (with the overdue
    grace) and no successful run has followed it: settlement meanwhile pays basic rates.
    A listener added after the day's run (the app's new listener, who earns basic anyway)
    is counted in the figures but is no problem. A paused badges-assign is
    `paused_with_work`'s. `done_at`: the instant its newest successful run worked as of."""
    job = _find(jobs, BADGES_JOB)
    if job is None or job.paused or not data.listeners_without_badge:
        return []
    if badges.business_date(job.due_at, settings) != today:
        return []  # today's firing is not past yet
    if done_at is not None and done_at >= job.due_at:
        return []
    if job.never_run:
        missed = BadgesMissed.NEVER_RUN
    elif job.last_run_failed:
        missed = BadgesMissed.LAST_RUN_FAILED
    elif done_at is None:
        missed = BadgesMissed.NEVER_SUCCEEDED
    else:
        missed = BadgesMissed.SUCCEEDED_BEFORE
    return [
        NoBadgeForToday(
            data.listeners_without_badge,
            today,
            job,
            missed,
            done_at,
            data.calls_settled_without_badge,
        )
    ]
