"""The schedule as systemd timers (`cron install --format systemd`): one `.service` and one
`.timer` per job, the same command line and configuration by reference as the cron lines,
the output in journald (`journalctl -u saathii-ops-coins-deduct`).

A cron expression becomes an `OnCalendar=` expression field by field (croniter expands
each field; the values are written as a list or as `start/step`). A business-time job
names the business timezone in its `OnCalendar=`, so it needs no conversion; the others
run on the machine's clock, as cron's lines do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from croniter import croniter

from saathii_ops.errors import UsageError
from saathii_ops.runtime.registry import JOBS, ScheduledCommand
from saathii_ops.scheduling.block import OPTIONS_LINE, recorded_options
from saathii_ops.scheduling.expressions import job_schedule
from saathii_ops.scheduling.lines import (
    METRICS,
    STANDARD_PATH,
    CronSetup,
    command_words,
    scheduled,
)
from saathii_ops.scheduling.schedule_target import (
    ScheduleTarget,
    recorded_target,
    same_target,
)
from saathii_ops.settings import Settings

MARKER = "# managed by saathii-ops cron install --format systemd; do not edit"
SYSTEM_UNITS = Path("/etc/systemd/system")
WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
# (first, last) value of each field as cron numbers it: minute, hour, day, month, weekday
FIELD_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def unit_name(job: ScheduledCommand) -> str:
    return f"saathii-ops-{job.name}"


def user_units_directory() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "systemd" / "user"


def default_directory() -> Path:
    """Where systemd reads units: the system's for root, else this user's (`systemctl
    --user`)."""
    return SYSTEM_UNITS if os.geteuid() == 0 else user_units_directory()


def on_calendar(expression: str, timezone: str | None = None) -> str:
    """A five-field cron expression as an `OnCalendar=` expression (in `timezone`, else the
    machine's). Refuses a day of the month together with a weekday: cron runs when either
    matches, systemd only when both do."""
    minutes, hours, days, months, weekdays = croniter(expression).expanded
    if days != ["*"] and weekdays != ["*"]:
        raise UsageError(
            f"{expression!r} names both days of the month and weekdays (cron runs on "
            "either, a systemd timer only on both): give the job two schedules' worth of "
            "cron, or one of the two fields"
        )
    fields = [
        _values(values, first, last)
        for values, (first, last) in zip(
            (minutes, hours, days, months), FIELD_RANGES[:4], strict=True
        )
    ]
    minute, hour, day, month = fields
    calendar = f"*-{month}-{day} {hour}:{minute}:00"
    if weekdays != ["*"]:
        names = sorted({int(d) % 7 for d in weekdays})
        calendar = f"{','.join(WEEKDAYS[d] for d in names)} {calendar}"
    return f"{calendar} {timezone}" if timezone else calendar


def _values(values: Sequence[int | str], first: int, last: int) -> str:
    """One field's values: `*`, `start/step` when they step evenly to the field's end,
    else a list."""
    if list(values) == ["*"]:
        return "*"
    numbers = sorted(int(v) for v in values)
    if numbers == list(range(first, last + 1)):
        return "*"
    if len(numbers) > 2:
        step = numbers[1] - numbers[0]
        if numbers == list(range(numbers[0], last + 1, step)):
            return f"{numbers[0]:02d}/{step}"
    return ",".join(f"{n:02d}" for n in numbers)


def _quote(word: str) -> str:
    """A word of ExecStart=: systemd's quoting, `%` specifiers and `$` expansions escaped."""
    escaped = word.replace("%", "%%").replace("$", "$$")
    if escaped and not any(c in escaped for c in " \t\"'\\;"):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _setting(value: str) -> str:
    """A value of Environment= or EnvironmentFile=: `%` escaped, quoted if it has a space."""
    escaped = value.replace("%", "%%")
    if any(c in escaped for c in ' \t"\\'):
        return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return escaped


def exec_start(job: ScheduledCommand, setup: CronSetup) -> str:
    words = [str(setup.executable)]
    if setup.config_file is not None:
        words += ["--config", str(setup.config_file)]
    if setup.database_url is not None:
        words += ["--database-url", setup.database_url]
    words += command_words(job, setup)
    return " ".join(_quote(word) for word in words)


def _header(setup: CronSetup) -> str:
    options = f"{OPTIONS_LINE}{' '.join(_shell_quote(setup.options))}\n" if setup.options else ""
    return f"{MARKER}\n{options}"


def _shell_quote(words: Sequence[str]) -> list[str]:
    import shlex

    return [shlex.quote(word) for word in words]


def service_unit(job: ScheduledCommand, setup: CronSetup) -> str:
    search_path = ":".join(dict.fromkeys([str(setup.executable.parent), *STANDARD_PATH]))
    lines = [
        _header(setup) + "[Unit]",
        f"Description=saathii-ops {' '.join(command_words(job, setup))}".replace("%", "%%"),
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        f"Environment={_setting(f'PATH={search_path}')}",
    ]
    if setup.env_file is not None:
        lines.append(f"EnvironmentFile={str(setup.env_file).replace('%', '%%')}")
    lines.append(f"ExecStart={exec_start(job, setup)}")
    if setup.user is not None:
        lines.append(f"User={setup.user}")
    # the output goes to journald: journalctl -u saathii-ops-<job>
    lines.append(f"SyslogIdentifier={unit_name(job)}")
    return "\n".join(lines) + "\n"


def timer_unit(job: ScheduledCommand, setup: CronSetup, settings: Settings) -> str:
    expression = job_schedule(job, settings)
    timezone = settings.timezone if job.business_time else None
    where = f" in {settings.timezone}" if job.business_time else ""
    return (
        f"{_header(setup)}[Unit]\n"
        f"Description=saathii-ops {job.name} on its schedule ({expression}{where})\n"
        "\n"
        "[Timer]\n"
        f"OnCalendar={on_calendar(expression, timezone)}\n"
        # on time to the second (the default is within a minute): billing runs each minute
        "AccuracySec=1s\n"
        # a run missed while the machine was down runs at boot: the next run catches up
        "Persistent=true\n"
        f"Unit={unit_name(job)}.service\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )


def units(setup: CronSetup, settings: Settings) -> dict[str, str]:
    """File name -> content of every job's .service and .timer."""
    files = {}
    for job in scheduled(setup):
        files[f"{unit_name(job)}.service"] = service_unit(job, setup)
        files[f"{unit_name(job)}.timer"] = timer_unit(job, setup, settings)
    return files


@dataclass
class UnitsChange:
    directory: str
    written: list[str] = field(default_factory=list)  # file names written (or to write)
    removed: list[str] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)  # what a dry-run prints


def _ours(path: Path) -> str | None:
    """The text of a unit file saathii-ops wrote; None when there is none (or another's)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text if text.startswith(MARKER + "\n") else None


def install(
    directory: Path, setup: CronSetup, settings: Settings, *, dry_run: bool, force: bool
) -> UnitsChange:
    """Write every job's units into `directory`. Units of another config file or database
    are not replaced without `force`; a file of the same name that saathii-ops did not
    write is never replaced."""
    files = units(setup, settings)
    wanted = recorded_target(dict(zip(setup.options[::2], setup.options[1::2], strict=True)))
    for name in files:
        path = directory / name
        if not path.exists():
            continue
        text = _ours(path)
        if text is None:
            raise UsageError(f"{path} exists and saathii-ops did not write it: move it away first")
        installed = recorded_target(recorded_options(text))
        if not force and not same_target(installed, wanted):
            raise UsageError(
                f"{path} runs another target ({installed.describe()}); this install is for "
                f"{wanted.describe()}: give --force to replace it"
            )
    change = UnitsChange(str(directory), sorted(files), units=files)
    if dry_run:
        return change
    if not os.access(setup.executable, os.X_OK):
        raise UsageError(f"{setup.executable} is not an executable file: see --executable")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            temporary = directory / f".{name}.tmp"
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, directory / name)
    except OSError as exc:
        raise UsageError(f"cannot write the units into {directory}: {exc.strerror}") from None
    return change


def remove(directory: Path, *, dry_run: bool) -> UnitsChange:
    """Remove the units saathii-ops wrote for the registered jobs, and nothing else."""
    change = UnitsChange(str(directory))
    for job in (*JOBS, METRICS):
        for suffix in (".timer", ".service"):
            path = directory / f"{unit_name(job)}{suffix}"
            if _ours(path) is None:
                continue
            change.removed.append(path.name)
            # `systemctl enable` linked the timer here: a link left would dangle
            enabled = directory / "timers.target.wants" / path.name
            if not dry_run:
                try:
                    if enabled.is_symlink():
                        enabled.unlink()
                    path.unlink()
                except OSError as exc:
                    raise UsageError(f"cannot remove {path}: {exc.strerror}") from None
    return change


def installed_jobs(directory: Path, wanted: ScheduleTarget) -> frozenset[str]:
    """The jobs with both units in `directory`, written by saathii-ops for `wanted`."""
    jobs = set()
    for job in JOBS:
        service = _ours(directory / f"{unit_name(job)}.service")
        timer = _ours(directory / f"{unit_name(job)}.timer")
        if service is None or timer is None:
            continue
        if same_target(recorded_target(recorded_options(service)), wanted):
            jobs.add(job.name)
    return frozenset(jobs)
