"""The demo's screen: one line per job, the status verdict, what to try next (`-v`: every
row each job changed, and the whole status)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

from saathii_ops.output import text as formatting

if TYPE_CHECKING:
    from saathii_ops.demo.run import DemoResult

# the jobs that fall behind within minutes when nothing runs them
OVERDUE_SOON = "coins-deduct, calls-cleanup and presence-cleanup"


def render_demo(console: Console, result: DemoResult, *, command: str) -> None:
    """`command`: how to call saathii-ops on the demo's database (`saathii-ops`, or with
    the `--database-url` the demo was given)."""
    say = console.print
    say(f"demo database: {result.url}")
    if result.sample is None:
        say("sample data: kept the existing (demo --reset starts afresh)")
    else:
        sample = result.sample
        say(
            f"sample data: {sample.users} users ({sample.listeners} listeners), "
            f"{sample.wallets} wallets, {sample.ongoing_calls} ongoing calls, "
            f"{sample.past_calls} past calls, {sample.transactions} transactions",
        )
    if result.runs:
        say(f"\nevery job, run once as of {formatting.moment(result.runs[0].now)}:")
    width = max((len(run.job) for run in result.runs), default=0)
    for run in result.runs:
        outcome = run.outcome + (f" ({run.reason})" if run.reason else "")
        detail = run.error or formatting.counts(run.report.counts() if run.report else None)
        took = formatting.duration(run.duration_seconds)
        say(f"  {run.job:<{width}}  {outcome}  {took:>6}  {detail}")
    status = result.status
    if status is not None:
        if status.healthy:
            say("\nstatus: healthy")
        else:
            count = formatting.plural(len(status.problems), "problem")
            say(f"\nstatus: UNHEALTHY ({count})")
            for problem in status.problems:
                say(f"  - {problem}")
    say(
        "\nWithout cron nothing runs the jobs again: within minutes `status` reports\n"
        f"{OVERDUE_SOON} overdue, and billing behind.\n"
        f"Run them all again: `{command} demo` (it keeps the data); one of them:\n"
        f"`{command} coins deduct`; on a schedule: `{command} cron install`.",
    )
    say("\nTry next:")
    tries = [
        ("status", "the health of every job and of the data"),
        ("jobs history", "every job's recent runs"),
        ("coins deduct --dry-run", "what billing would charge now, changing nothing"),
        ("demo -v", "every row each job changed"),
    ]
    width = max(len(args) for args, _ in tries)
    for args, what in tries:
        say(f"  {command} {args:<{width}}  # {what}")
