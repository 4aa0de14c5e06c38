"""The demo's screen: one line per job, the status verdict, what to try next (`-v`: every
row each job changed, and the whole status)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

from saathii_ops.output import text as formatting
from saathii_ops.output.render import fitted_table

if TYPE_CHECKING:
    from saathii_ops.demo.run import DemoResult

# the jobs that fall behind within minutes when nothing runs them
OVERDUE_SOON = "coins-deduct, calls-cleanup and presence-cleanup"
# a run whose every count is 0 (nothing pruned, nothing found)
NOTHING = "nothing to do, nothing found"


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
    rows = []
    for run in result.runs:
        outcome = run.outcome + (f" ({run.reason})" if run.reason else "")
        counts = run.report.counts() if run.report else {}
        detail = run.error or (formatting.counts(counts) if any(counts.values()) else NOTHING)
        rows.append([run.job, outcome, formatting.duration(run.duration_seconds), detail])
    if console.is_terminal and rows:
        _wrapped_columns(console, rows, right=2)
    else:
        width = max((len(run.job) for run in result.runs), default=0)
        for job, outcome, took, detail in rows:
            say(f"  {job:<{width}}  {outcome}  {took:>6}  {detail}")
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
        ("-v demo", "every row each job changed"),
    ]
    width = max(len(args) for args, _ in tries)
    lines = [f"  {command} {args:<{width}}  # {what}" for args, what in tries]
    if console.is_terminal and max(map(len, lines)) > console.width:
        # too long for one line each (a long --database-url): each comment under its command
        for args, what in tries:
            say(f"  {command} {args}")
            say(f"      # {what}")
        return
    for line in lines:
        say(line)


def _wrapped_columns(console: Console, rows: list[list[str]], *, right: int | None = None) -> None:
    """On a terminal: rows of columns two spaces apart, indented two, a long cell wrapped
    within its column between words (the terminal would cut a word in two)."""
    from rich.padding import Padding

    table = fitted_table(console, rows[0], rows, grid=True, max_width=console.width - 2)
    if right is not None:
        table.columns[right].justify = "right"
    console.print(Padding(table, (0, 0, 0, 2)))
