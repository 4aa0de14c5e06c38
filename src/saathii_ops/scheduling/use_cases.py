"""`cron install | remove | show` as use cases: the block written in place of the installed
one, removed, or compared with what an install would write now."""

from __future__ import annotations

import difflib
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from crontab import CronTab

from saathii_ops.errors import ExitCode, UsageError
from saathii_ops.runtime.identity import user_name
from saathii_ops.scheduling.block import (
    find_block,
    installed_at,
    recorded_options,
    with_block,
    without_block,
    without_stamp,
)
from saathii_ops.scheduling.expressions import next_runs
from saathii_ops.scheduling.lines import CronSetup, render_block
from saathii_ops.scheduling.schedule_target import recorded_target, same_target
from saathii_ops.scheduling.targets import CrontabTarget, crontab_lock
from saathii_ops.settings import Settings


@dataclass
class CrontabChange:
    target: str
    changed: bool
    content: str  # the crontab after the change
    diff: list[str] = field(default_factory=list)  # the crontab before -> after (a dry-run's)
    log_dir: str | None = None
    log_dir_created: bool = False


def crontab_diff(before: str, after: str, where: str) -> list[str]:
    """A unified diff of a crontab, line by line (each line with its own line break)."""
    lines = list(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"{where} (now)",
            f"{where} (after)",
        )
    )
    # a last line without a line break, as diff(1) marks it
    return [
        line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n" for line in lines
    ]


def refuse_another_target(installed_block: str, setup: CronSetup, where: str) -> None:
    """An installed block that runs another config file or database is not replaced
    without --force: its jobs would silently stop running there (SPEC §10)."""
    installed = recorded_target(recorded_options(installed_block))
    wanted = recorded_target(dict(zip(setup.options[::2], setup.options[1::2], strict=True)))
    if not same_target(installed, wanted):
        raise UsageError(
            f"{where} holds the saathii-ops block of another target ({installed.describe()}); "
            f"this install is for {wanted.describe()}: give --force to replace it"
        )


def install(
    target: CrontabTarget,
    setup: CronSetup,
    settings: Settings,
    now: datetime,
    *,
    dry_run: bool,
    force: bool = False,
) -> CrontabChange:
    """Write the block in place of the installed one. A block that differs only by its
    install time is left as it is; one of another target only with `force`. The log
    directory is made first: if that fails, nothing is written."""
    block = render_block(setup, settings, now)
    with crontab_lock():
        current = target.read()
        span = find_block(current, target.description)
        if span is not None and not force:
            refuse_another_target(span.text, setup, target.description)
        unchanged = span is not None and without_stamp(span.text) == without_stamp(block)
        content = current if unchanged else with_block(current, block, target.description)
        change = CrontabChange(
            target.description,
            not unchanged,
            content,
            crontab_diff(current, content, target.description),
            str(setup.log_dir),
        )
        if dry_run:
            return change
        if not os.access(setup.executable, os.X_OK):
            raise UsageError(f"{setup.executable} is not an executable file: see --executable")
        change.log_dir_created = make_log_dir(setup.log_dir, setup.user)
        if change.changed:
            target.write(content)
    return change


def make_log_dir(log_dir: Path, user: str | None) -> bool:
    """Create the log directory (rwxr-x---) if needed, owned by the lines' user when
    root installs for another one; whether it was created."""
    if log_dir.is_dir():
        if user is None and not os.access(log_dir, os.W_OK | os.X_OK):
            raise UsageError(f"the log directory {log_dir} is not writable by this user")
        return False
    try:
        log_dir.mkdir(mode=0o750, parents=True)
        if user is not None and user != user_name():
            shutil.chown(log_dir, user)
    except (OSError, LookupError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UsageError(
            f"cannot create the log directory {log_dir}: {reason} "
            "(choose another with --log-dir, or create it for this user)"
        ) from None
    return True


def remove(target: CrontabTarget, *, dry_run: bool) -> CrontabChange:
    with crontab_lock():
        current = target.read()
        content = without_block(current, target.description)
        if content != current and not dry_run:
            target.write(content)
    return CrontabChange(
        target.description,
        content != current,
        content,
        crontab_diff(current, content, target.description),
    )


@dataclass
class JobRuns:
    job: str
    schedule: str
    server_time: list[datetime]
    business_time: list[datetime]


@dataclass
class CrontabState:
    target: str
    installed: bool
    installed_at: str | None
    up_to_date: bool
    block: str | None
    diff: list[str] = field(default_factory=list)  # installed -> what install would write
    next_runs: list[JobRuns] = field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        """`cron install --check` (SPEC §10): a block that install would change fails."""
        return ExitCode.OK if self.up_to_date else ExitCode.FAILED


def inspect(
    target: CrontabTarget, setup: CronSetup, settings: Settings, now: datetime
) -> CrontabState:
    """The installed block, its drift from what `install` would write now, and the next
    runs of each of its lines (read back with python-crontab)."""
    expected = render_block(setup, settings, now)
    span = find_block(target.read(), target.description)
    if span is None:
        return CrontabState(target.description, False, None, False, None)
    installed, wanted = without_stamp(span.text), without_stamp(expected)
    diff = list(
        difflib.unified_diff(
            installed.splitlines(),
            wanted.splitlines(),
            "installed",
            "cron install now",
            lineterm="",
        )
    )
    runs = []
    for entry in CronTab(tab=span.text):
        if not (entry.is_valid() and entry.is_enabled()):
            continue
        expression = entry.slices.clean_render()
        server_times = next_runs(expression, setup.server_tz, now)
        runs.append(
            JobRuns(
                job=(entry.comment or "?").split()[0],
                schedule=expression,
                server_time=server_times,
                business_time=[t.astimezone(settings.business_tz) for t in server_times],
            )
        )
    return CrontabState(
        target.description, True, installed_at(span.text), not diff, span.text, diff, runs
    )
