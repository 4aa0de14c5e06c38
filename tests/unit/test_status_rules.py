"""`status`'s health rules (status.rules) as pure functions: made-up jobs and figures in,
typed findings and their exact sentences out, no database. What the screen says to do
about each (output.status_screen.what_to_do) is checked here too."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from saathii_ops.billing.charge import BillingReport
from saathii_ops.output.status_screen import what_to_do
from saathii_ops.settings import Settings
from saathii_ops.status import rules
from saathii_ops.status.findings import (
    WAITING_WORK,
    BadgesMissed,
    BillingBehind,
    DatabaseReadOnly,
    DatabaseUnreachable,
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

NOW = datetime(2026, 11, 29, 6, 10, 30, tzinfo=UTC)
TODAY = date(2026, 11, 29)  # in Asia/Kolkata
SETTINGS = Settings(server_timezone="UTC")
RAN = datetime(2026, 11, 29, 6, 10, tzinfo=UTC)
DUE = datetime(2026, 11, 29, 6, 8, tzinfo=UTC)
# badges-assign's firing of today: 00:01 in Asia/Kolkata
BADGES_DUE = datetime(2026, 11, 28, 18, 31, tzinfo=UTC)
PAUSED_AT = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


def job(name: str = "coins-deduct", **changes: Any) -> JobHealth:
    """A job whose last run was ok, after its latest due firing."""
    healthy: dict[str, Any] = {
        "job": name,
        "command": name.replace("-", " "),
        "schedule": "* * * * *",
        "timezone": "UTC",
        "paused": False,
        "paused_by": None,
        "paused_at": None,
        "paused_reason": None,
        "last_outcome": "ok",
        "last_reason": None,
        "last_started_at": RAN,
        "last_finished_at": RAN,
        "last_error": None,
        "last_run_now": RAN,
        "last_duration_seconds": 0.5,
        "last_counts": {},
        "last_failed_at": None,
        "last_failure_error": None,
        "scheduled": True,
        "never_run": False,
        "due_at": DUE,
        "next_run_at": DUE + timedelta(minutes=3),
        "overdue": False,
        "last_run_failed": False,
        "last_exit_code": 0,
    }
    return JobHealth(**{**healthy, **changes})


def paused(name: str, reason: str | None = "upgrade") -> JobHealth:
    return job(name, paused=True, paused_at=PAUSED_AT, paused_by="ops", paused_reason=reason)


def badges_assign(**changes: Any) -> JobHealth:
    return job("badges-assign", schedule="1 0 * * *", timezone="Asia/Kolkata", **changes)


def data(**figures: int) -> DataHealth:
    """Every figure 0 but those given."""
    zeros = dict.fromkeys((f.name for f in dataclasses.fields(DataHealth)), 0)
    return DataHealth(**{**zeros, **figures})


def problems(findings: list[Finding]) -> list[str]:
    return [finding.problem for finding in findings]


# --- overdue ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("is_paused", "last_run_now", "overdue"),
    [
        (False, DUE - timedelta(seconds=1), True),
        (False, DUE, False),  # worked as of F itself: in time
        (True, DUE - timedelta(hours=1), False),  # paused: not late, paused
        (False, None, False),  # never ran: not installed yet, maybe
    ],
)
def test_overdue_is_a_last_run_before_the_due_firing_of_a_job_not_paused(
    is_paused: bool, last_run_now: datetime | None, overdue: bool
) -> None:
    assert rules.is_overdue(paused=is_paused, last_run_now=last_run_now, due_at=DUE) is overdue


# --- a job's runs ----------------------------------------------------------------------


def test_a_healthy_job_has_no_finding() -> None:
    assert rules.job_findings(job()) == []


def test_an_overdue_job_with_its_due_firing_and_last_run() -> None:
    late = job(overdue=True, last_run_now=datetime(2026, 11, 29, 6, 0, tzinfo=UTC))
    assert rules.job_findings(late) == [JobOverdue(late)]
    assert problems(rules.job_findings(late)) == [
        "coins-deduct is overdue: due at 2026-11-29 06:08:00 UTC (* * * * * in UTC), "
        "last ran as of 2026-11-29 06:00:00 UTC"
    ]


def test_a_failed_last_run_with_its_error() -> None:
    failed = job(last_outcome="failed", last_run_failed=True, last_error="boom", last_exit_code=3)
    assert problems(rules.job_findings(failed)) == [
        "coins-deduct's last run failed (at 2026-11-29 06:10:00 UTC): boom"
    ]


def test_a_run_that_exited_1_quotes_the_counts_that_made_it() -> None:
    exited = job(
        last_reason="some rows failed",
        last_counts={"calls_charged": 4, "skipped_calls": 2, "half_ended_calls": 1},
        last_exit_code=1,
    )
    (finding,) = rules.job_findings(exited)
    assert finding == JobExited1(exited, (("skipped_calls", 2), ("half_ended_calls", 1)))
    assert finding.problem == (
        "coins-deduct's last run (at 2026-11-29 06:10:00 UTC) exited 1: "
        "skipped calls 2, half ended calls 1"
    )


def test_every_finding_of_the_audit_is_quoted() -> None:
    """The audit's counts are its findings, every one (calls_unbillable and
    duplicate_badge_days were once left out, for want of being named)."""
    audit = job(
        "wallets-audit",
        schedule="0 * * * *",
        last_reason="some rows failed",
        last_counts={"wallets_off": 0, "calls_unbillable": 3, "duplicate_badge_days": 1},
    )
    assert problems(rules.job_findings(audit)) == [
        "wallets-audit's last run (at 2026-11-29 06:10:00 UTC) exited 1: "
        "calls unbillable 3, duplicate badge days 1"
    ]


def test_the_counts_a_problem_quotes_are_the_reports_own() -> None:
    assert {
        "skipped_calls",
        "half_ended_calls",
        "wallets_off",
        "calls_changed_after_settlement",
        "calls_ended_again_after_half_end",
        "calls_half_ended",
        "calls_overcharged",
        "calls_undercharged",
        "calls_unbillable",
        "duplicate_badge_days",
    } == rules.EXIT_1_COUNTS
    # a count renamed in its report fails when status is imported, not silently
    with pytest.raises(TypeError, match="BillingReport has no count skipped_rows"):
        rules.report_counts(BillingReport, "skipped_rows")


# --- the data --------------------------------------------------------------------------


def test_billing_behind_names_what_stalls_coins_deduct() -> None:
    cases = [
        (
            paused("coins-deduct", reason=None),
            Stalled.PAUSED,
            "coins-deduct is paused since 2026-11-29 06:00:00 UTC by ops",
        ),
        (job(never_run=True, last_outcome=None), Stalled.NEVER_RUN, "coins-deduct has never run"),
        (job(last_run_failed=True), Stalled.LAST_RUN_FAILED, "coins-deduct's last run failed"),
        (job(overdue=True), Stalled.OVERDUE, "coins-deduct is overdue"),
        (
            job(scheduled=False),
            Stalled.NOT_SCHEDULED,
            "coins-deduct is not in the installed cron block",
        ),
    ]
    for coins_deduct, stalled, cause in cases:
        findings = rules.data_findings(data(billing_behind_calls=2), [coins_deduct])
        assert findings == [BillingBehind(2, coins_deduct, stalled)]
        assert problems(findings) == [
            f"billing is behind because {cause}: 2 ongoing calls owe coins for minutes that "
            "started over 2 minutes ago"
        ]


def test_billing_behind_with_nothing_known_of_why() -> None:
    for jobs in ([job(scheduled=None)], []):
        findings = rules.data_findings(data(billing_behind_calls=1), jobs)
        assert problems(findings) == [
            "billing is behind: 1 ongoing call owes coins for minutes that started over 2 "
            "minutes ago (is coins-deduct running?)"
        ]


def test_calls_billing_cannot_bill() -> None:
    findings = rules.data_findings(data(unbillable_calls=3), [job()])
    assert findings == [UnbillableCalls(3)]
    assert problems(findings) == [
        "3 ongoing calls cannot be billed (half-ended by the app, settled before, or bad "
        "rows: `coins deduct --dry-run` names each): coins deduct skips them"
    ]


def test_a_paused_job_with_work_waiting_and_only_then() -> None:
    jobs = [paused("calls-cleanup"), paused("presence-cleanup"), paused("badges-assign")]
    figures = data(cleanup_due_calls=1, presence_due_users=2, listeners_without_badge=0)
    assert problems(rules.paused_with_work(figures, jobs)) == [
        "calls-cleanup is paused since 2026-11-29 06:00:00 UTC by ops: upgrade, with work "
        "waiting: 1 ongoing call it would end now",
        "presence-cleanup is paused since 2026-11-29 06:00:00 UTC by ops: upgrade, with work "
        "waiting: 2 users it would mark offline or clear of busy now",
    ]
    # running, the same work is no problem; a paused audit has none to count
    assert rules.paused_with_work(figures, [job("calls-cleanup"), paused("wallets-audit")]) == []


# --- today's badges --------------------------------------------------------------------


def _badge_findings(assign: JobHealth, done_at: datetime | None, **figures: int) -> list[Finding]:
    without = data(**{"listeners_without_badge": 2, **figures})
    return rules.badge_findings(without, [assign], TODAY, done_at, SETTINGS)


def test_no_badge_for_today_names_why() -> None:
    before = BADGES_DUE - timedelta(hours=1)
    head = (
        "2 active listeners without a badge for today (2026-11-29): badges-assign was due at "
        "2026-11-28 18:31:00 UTC (1 0 * * * in Asia/Kolkata) and "
    )
    cases = [
        (badges_assign(due_at=BADGES_DUE, never_run=True), None, BadgesMissed.NEVER_RUN),
        (
            badges_assign(due_at=BADGES_DUE, last_run_failed=True),
            before,
            BadgesMissed.LAST_RUN_FAILED,
        ),
        (badges_assign(due_at=BADGES_DUE), None, BadgesMissed.NEVER_SUCCEEDED),
        (badges_assign(due_at=BADGES_DUE), before, BadgesMissed.SUCCEEDED_BEFORE),
    ]
    texts = []
    for assign, done_at, missed in cases:
        (finding,) = _badge_findings(assign, done_at)
        assert finding == NoBadgeForToday(2, TODAY, assign, missed, done_at, 0)
        texts.append(finding.problem.removeprefix(head))
    assert texts == [
        "it has never run",
        "its last run failed",
        "it has never run successfully",
        "its last successful run was as of 2026-11-28 17:31:00 UTC",
    ]
    (paid_basic,) = _badge_findings(
        badges_assign(due_at=BADGES_DUE), None, **{"calls_settled_without_badge": 1}
    )
    assert paid_basic.problem == (
        f"{head}it has never run successfully; 1 call settled today at basic rates for want "
        "of a badge row"
    )


def test_no_badge_for_today_is_no_problem_before_todays_firing_nor_after_its_run() -> None:
    # at 18:30 UTC on the 28th the latest firing is the 27th's: today's is not past yet
    yesterdays = badges_assign(due_at=BADGES_DUE - timedelta(days=1), never_run=True)
    assert _badge_findings(yesterdays, None) == []
    assert _badge_findings(badges_assign(due_at=BADGES_DUE), BADGES_DUE) == []
    assert _badge_findings(paused("badges-assign"), None) == []  # paused_with_work's
    no_listener = data(listeners_without_badge=0)
    assigned = badges_assign(due_at=BADGES_DUE, never_run=True)
    assert rules.badge_findings(no_listener, [assigned], TODAY, None, SETTINGS) == []


# --- all together, in order ------------------------------------------------------------


def test_judge_lists_the_schema_the_database_the_jobs_then_the_data() -> None:
    failed = job("presence-cleanup", last_run_failed=True, last_error="boom")
    findings = rules.judge(
        schema_problem="the schema is at 0004, not 0005",
        read_only="default_transaction_read_only = on",
        jobs=[failed],
        data=None,
        today=None,
        badges_done_at=None,
        settings=SETTINGS,
    )
    assert findings == [
        SchemaNotReady("the schema is at 0004, not 0005"),
        DatabaseReadOnly("default_transaction_read_only = on"),
        JobFailed(failed),
    ]
    assert problems(findings)[:2] == [
        "the schema is at 0004, not 0005 (jobs and data not read until then)",
        "the database is read-only (default_transaction_read_only = on): every job's run "
        "fails (exit 3) and nothing is billed, ended or recorded",
    ]
    healthy = rules.judge(
        schema_problem=None,
        read_only=None,
        jobs=[job(), badges_assign(due_at=BADGES_DUE)],
        data=data(),
        today=TODAY,
        badges_done_at=BADGES_DUE,
        settings=SETTINGS,
    )
    assert healthy == []


# --- what the screen says to do --------------------------------------------------------


def test_what_to_do_about_each_finding() -> None:
    late = job(overdue=True, scheduled=True)
    assert [
        what_to_do(finding)
        for finding in (
            DatabaseUnreachable("could not connect"),
            SchemaNotReady("the database has no schema yet: run `saathii-ops db upgrade`"),
            DatabaseReadOnly("in recovery"),
            JobOverdue(late),
            JobOverdue(dataclasses.replace(late, scheduled=False)),
            JobFailed(job("presence-cleanup")),
            JobExited1(job(), (("skipped_calls", 1),)),
            BillingBehind(1, paused("coins-deduct"), Stalled.PAUSED),
            BillingBehind(1, job(overdue=True), Stalled.OVERDUE),
            UnbillableCalls(1),
            PausedWithWork(paused("calls-cleanup"), WAITING_WORK[0], 1),
            NoBadgeForToday(1, TODAY, badges_assign(), BadgesMissed.NEVER_RUN, None, 0),
        )
    ] == [
        None,
        None,
        "point saathii-ops at the primary (a writable database)",
        "cron has it: see cron's log and `saathii-ops jobs history coins-deduct`; "
        "`saathii-ops coins deduct` runs it now",
        "`saathii-ops cron install` schedules it; `saathii-ops coins deduct` runs it now",
        "`saathii-ops jobs history presence-cleanup --failed` lists its failures; "
        "`saathii-ops -v presence cleanup --dry-run` shows the traceback",
        "`saathii-ops coins deduct --dry-run` names each",
        "`saathii-ops jobs resume coins-deduct`: its next run bills what is owed",
        "`saathii-ops coins deduct` bills them now",
        "docs/running-beside-the-app.md says what to do with each kind",
        "`saathii-ops jobs resume calls-cleanup`: its next run does it",
        "`saathii-ops badges assign` assigns today's badges now",
    ]
