"""The crontab lines of the registered jobs: what each line runs, with which environment,
and the marked block that holds them (python-crontab renders each entry, escaping `%`)."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from crontab import CronTab

from saathii_ops.db.engine import parse_url
from saathii_ops.errors import UsageError
from saathii_ops.jobs.log_prune import log_path
from saathii_ops.runtime.identity import user_name
from saathii_ops.runtime.registry import JOBS, ScheduledCommand
from saathii_ops.scheduling.block import BLOCK_BEGIN, BLOCK_END, INSTALLED_AT, OPTIONS_LINE
from saathii_ops.scheduling.expressions import (
    job_schedule,
    server_schedule,
    server_timezone,
)
from saathii_ops.settings import Settings, UrlSource, resolve_database_url

STANDARD_PATH = ("/usr/local/bin", "/usr/bin", "/bin")


@dataclass(frozen=True)
class CronSetup:
    """Everything the lines depend on besides the jobs and the settings."""

    executable: Path
    log_dir: Path
    server_tz: ZoneInfo
    config_file: Path | None = None
    env_file: Path | None = None
    database_url: str | None = None  # on the lines; never one with a password
    user: str | None = None  # the user field of a system crontab (/etc/cron.d)
    options: tuple[str, ...] = ()  # the install options given, recorded in the block
    # `status --format prometheus` written there every minute (node_exporter's textfile)
    metrics_file: Path | None = None


# The schedule's line that writes the metrics (not a job: it changes nothing, records no run)
METRICS = ScheduledCommand(
    name="status-metrics",
    command="status --format prometheus --metrics-file",
    schedule="* * * * *",
    business_time=False,
)


def scheduled(setup: CronSetup) -> tuple[ScheduledCommand, ...]:
    """What the schedule runs: every registered job, and the metrics when asked for."""
    return (*JOBS, METRICS) if setup.metrics_file is not None else JOBS


def command_words(job: ScheduledCommand, setup: CronSetup) -> list[str]:
    """The arguments after saathii-ops' global options."""
    words = job.command.split()
    if job is METRICS:
        assert setup.metrics_file is not None
        words.append(str(setup.metrics_file))
    return words


def installed_executable(option: Path | None, argv0: str) -> Path:
    """--executable, else the running `saathii-ops` (`argv0`), else the one on PATH.

    Absolute but not resolved: a stable link such as /usr/local/bin/saathii-ops
    stays the path on the lines across releases.
    """
    if option is not None:
        return Path(os.path.abspath(option))
    if Path(argv0).name == "saathii-ops" and os.path.isfile(argv0):
        return Path(os.path.abspath(argv0))
    found = shutil.which("saathii-ops")
    if found is None:
        raise UsageError("cannot find the installed saathii-ops executable: give --executable")
    return Path(os.path.abspath(found))


def line_database_url(url: str, source: UrlSource, *, env_file: Path | None) -> str | None:
    """The database URL a line must carry, if any, by SPEC §2's precedence as cron will see it.

    From the config file: the line's --config carries it. The embedded default:
    the same for cron. From --database-url: cron sees only what the line says.
    From the environment: the env file carries it, else the line must. A URL
    with a password never goes on a line: it belongs in the config file or an
    env file.
    """
    if source in (UrlSource.CONFIG_FILE, UrlSource.EMBEDDED):
        return None
    if source != UrlSource.OPTION and env_file is not None:
        return None
    parsed = parse_url(url)
    if parsed.password is not None or "password" in parsed.query:
        raise UsageError(
            f"the database URL (from {source}) holds a password, which never goes on a "
            "cron line: put it in the config file (--config) or in an env file the lines "
            "source (--env-file)"
        )
    return url


def environment_cron_cannot_see(env_file: Path | None) -> list[str]:
    """Settings this shell gives by SAATHII_* variables that the cron lines will not have
    (the database URL aside: `line_database_url` sees to it)."""
    if env_file is not None:
        return []
    prefixes = tuple(
        f"SAATHII_{name.upper()}" for name in Settings.model_fields if name != "database_url"
    )
    return sorted(
        name
        for name in os.environ
        if any(name == prefix or name.startswith(f"{prefix}__") for prefix in prefixes)
    )


def cron_setup(
    settings: Settings,
    *,
    database_url_option: str | None,
    config_file: Path | None,
    executable: Path | None,
    log_dir: Path | None,
    env_file: Path | None,
    server_timezone_option: str | None,
    user: str | None,
    system: bool,
    metrics_file: Path | None = None,
) -> CronSetup:
    """The setup of the lines from the command's options and the running configuration.

    A user makes the lines those of a system crontab (a user field); --system
    defaults it to the user running the command.
    """
    if env_file is not None:
        env_file = Path(os.path.abspath(env_file))
        if not env_file.is_file():
            raise UsageError(f"--env-file: {env_file} is not a file")
    url, source = resolve_database_url(database_url_option, settings)
    setup = CronSetup(
        executable=installed_executable(executable, sys.argv[0]),
        log_dir=Path(os.path.abspath(log_dir or settings.log_dir)),
        server_tz=server_timezone(server_timezone_option, settings),
        config_file=Path(os.path.abspath(config_file)) if config_file else None,
        env_file=env_file,
        database_url=line_database_url(url, source, env_file=env_file),
        user=user or (user_name() if system else None),
        metrics_file=Path(os.path.abspath(metrics_file)) if metrics_file else None,
    )
    given = {
        "--config": setup.config_file,
        # the URL the lines carry, given or from this shell's environment: part of the
        # block's target (schedule_target)
        "--database-url": setup.database_url,
        "--executable": setup.executable if executable else None,
        "--log-dir": setup.log_dir if log_dir else None,
        "--env-file": setup.env_file,
        "--server-timezone": server_timezone_option,
        "--user": user,
        "--metrics-file": setup.metrics_file,
    }
    options = [str(part) for name, value in given.items() if value for part in (name, value)]
    return replace(setup, options=tuple(options))


def command_line(job: ScheduledCommand, setup: CronSetup, settings: Settings) -> str:
    """The shell command of one job's line (before python-crontab escapes `%`)."""
    q = shlex.quote
    search_path = ":".join(dict.fromkeys([str(setup.executable.parent), *STANDARD_PATH]))
    environment = [f"PATH={q(search_path)}"]
    if setup.log_dir != settings.log_dir:
        # `logs prune` must prune the directory these lines write to
        environment.append(f"SAATHII_LOG_DIR={q(str(setup.log_dir))}")
    program = [q(str(setup.executable))]
    if setup.config_file is not None:
        program += ["--config", q(str(setup.config_file))]
    if setup.database_url is not None:
        program += ["--database-url", q(setup.database_url)]
    program += [q(word) for word in command_words(job, setup)]
    # No `flock -n` around it: it would exit 1 before saathii-ops starts, leaving no
    # 'skipped' run and no ping. The job's own lock (in the database; a file lock beside
    # an SQLite database) keeps runs apart and records the skip (SPEC §9).
    command = " ".join(
        [
            *environment,
            *program,
            ">>",
            q(str(log_path(setup.log_dir, job.name))),
            "2>&1",
        ]
    )
    if setup.env_file is not None:
        # set -a exports what the file assigns; && so a missing file runs nothing
        command = f"set -a && . {q(str(setup.env_file))} && set +a && {command}"
    return command


def render_block(setup: CronSetup, settings: Settings, now: datetime) -> str:
    """The marked block of every registered job, validated before anything is written."""
    paths = (setup.executable, setup.log_dir, setup.config_file, setup.env_file, setup.metrics_file)
    for value in paths:
        if value is not None and ("\n" in str(value) or "\r" in str(value)):
            raise UsageError(f"a path on a cron line cannot hold a line break: {str(value)!r}")
    for option in setup.options:
        if "\n" in option or "\r" in option:
            raise UsageError(f"an option of cron install cannot hold a line break: {option!r}")
    tab = CronTab(user=False) if setup.user else CronTab()
    for job in scheduled(setup):
        expression = server_schedule(job, settings, setup.server_tz, now)
        comment = job.name
        if job.business_time:
            comment += f" ({job_schedule(job, settings)} in {settings.timezone})"
        entry = tab.new(
            command=command_line(job, setup, settings),
            comment=comment,
            user=setup.user,
            pre_comment=True,
        )
        entry.setall(expression)
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    options = f"{OPTIONS_LINE}{shlex.join(setup.options)}\n" if setup.options else ""
    return (
        f"{BLOCK_BEGIN}{INSTALLED_AT}{stamp}\n"
        f"{options}"
        f"# times are {setup.server_tz.key} (cron's timezone); "
        f"business timezone {settings.timezone}\n"
        f"{tab.render()}"
        f"{BLOCK_END}\n"
    )
