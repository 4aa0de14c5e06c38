"""Scheduling (SPEC §10): the crontab lines of the registered jobs, the marked block
that holds them, and the crontab it lives in (the user's, /etc/cron.d, any file).

Libraries, not hand-written parsers: croniter and python-crontab both validate
every expression (croniter alone accepts forms cron does not: seconds, `L`,
`#`), python-crontab renders each entry (escaping `%`) and reads the installed
block back, croniter computes run times. The crontab around the block is
handled as text, never re-rendered: python-crontab's rendering normalises
lines it did not write (whitespace, comments, environment lines), and every
byte outside the block must stay as it was.

Time zones: cron reads a schedule in the server's timezone. A business-time
job (badges-assign, 00:01 in Asia/Kolkata) is rewritten for the server's
timezone (18:31 the previous day for a server in UTC). That is exact only
while the two zones keep one offset between them at every firing: install
checks every firing of the coming year and refuses when daylight saving time
breaks it (CRON_TZ would do, but not every cron honours it), naming the ways
out: run cron in UTC or in the business timezone, or use Kubernetes
CronJobs, which take a timeZone.
"""

from __future__ import annotations

import difflib
import fcntl
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from croniter import croniter
from crontab import CronSlices, CronTab

from saathii_ops.db import parse_url
from saathii_ops.errors import OpsError, UsageError
from saathii_ops.identity import user_name
from saathii_ops.jobs import JOBS, Job
from saathii_ops.services.log_prune import log_path
from saathii_ops.settings import Settings, known_timezone, resolve_database_url

BLOCK_ID = "saathii-ops"
BLOCK_BEGIN = f"# BEGIN {BLOCK_ID} (managed by saathii-ops cron install; do not edit)"
BLOCK_END = f"# END {BLOCK_ID}"
INSTALLED_AT = " installed "  # the begin marker ends with " installed <UTC time>"
# The block's own install options, so that `cron show` and `install --check` compare the
# installed block with what the same install would write now, not with the defaults.
OPTIONS_LINE = "# installed with: "
INSTALL_OPTIONS = (
    "--config",
    "--database-url",
    "--executable",
    "--log-dir",
    "--env-file",
    "--server-timezone",
    "--user",
)
SYSTEM_CRONTAB = Path("/etc/cron.d/saathii-ops")
STANDARD_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
LOCALTIME = Path("/etc/localtime")
TIMEZONE_FILE = Path("/etc/timezone")
NEXT_RUNS = 3


# --- expressions and time zones -----------------------------------------------


def valid_expression(expression: str) -> bool:
    """A five-field cron expression (or @daily & co.) that both libraries accept."""
    return bool(CronSlices.is_valid(expression)) and croniter.is_valid(expression)


def job_schedule(job: Job, settings: Settings) -> str:
    """The job's cron expression: `schedules.<job>` from the settings, else the registry's.

    Read in the business timezone for a business-time job, the server's otherwise.
    """
    unknown = sorted(set(settings.schedules) - {j.name for j in JOBS})
    if unknown:
        known = ", ".join(j.name for j in JOBS)
        raise UsageError(
            f"invalid configuration: schedules: unknown job {unknown[0]!r}; known jobs: {known}"
        )
    expression = settings.schedules.get(job.name, job.schedule)
    if not valid_expression(expression):
        raise UsageError(
            f"invalid configuration: schedules.{job.name}: {expression!r} is not a valid "
            "cron expression (five fields: minute hour day-of-month month day-of-week)"
        )
    return expression


def machine_timezone() -> str:
    """The timezone cron's daemon runs in: /etc/localtime (a link into the zoneinfo
    database), else /etc/timezone; UTC when there is no /etc/localtime at all (glibc's
    default). The TZ variable of this shell is not cron's, so it is not read."""
    if not LOCALTIME.exists():
        return "UTC"
    target = os.path.realpath(LOCALTIME)
    if "/zoneinfo/" in target:
        return target.split("/zoneinfo/", 1)[1]
    if TIMEZONE_FILE.exists():
        return TIMEZONE_FILE.read_text(encoding="utf-8").strip()
    raise UsageError(
        f"cannot tell this machine's timezone from {LOCALTIME} or {TIMEZONE_FILE}: "
        "give it with --server-timezone or the server_timezone setting"
    )


def server_timezone(option: str | None, settings: Settings) -> ZoneInfo:
    """--server-timezone, else the server_timezone setting, else this machine's."""
    name = option or settings.server_timezone or machine_timezone()
    try:
        return known_timezone(name)
    except ValueError as exc:
        raise UsageError(f"--server-timezone: {exc}") from None


def server_schedule(job: Job, settings: Settings, server_tz: ZoneInfo, now: datetime) -> str:
    """The job's expression as cron in `server_tz` must read it."""
    expression = job_schedule(job, settings)
    business_tz = settings.business_tz
    if not job.business_time or business_tz.key == server_tz.key:
        return expression
    minutes, hours, days, months, weekdays = croniter(expression).expanded
    if len(minutes) != 1 or len(hours) != 1 or "*" in (minutes[0], hours[0]):
        raise UsageError(
            f"{job.name}: {expression!r} is read in {business_tz.key}; cron here runs in "
            f"{server_tz.key}, and only a schedule with one time of day can be converted"
        )
    shift = _fixed_offset(job, expression, business_tz, server_tz, now)
    day_shift, minute_of_day = divmod(int(hours[0]) * 60 + int(minutes[0]) + shift, 24 * 60)
    if day_shift and (days != ["*"] or months != ["*"]):
        raise UsageError(
            f"{job.name}: {expression!r} in {business_tz.key} falls on another day in "
            f"{server_tz.key}, which a schedule naming days of the month cannot express"
        )
    if weekdays != ["*"]:
        weekdays = [str(day) for day in sorted((int(d) + day_shift) % 7 for d in weekdays)]
    hour, minute = divmod(minute_of_day, 60)
    converted = " ".join([str(minute), str(hour), *map(_field, (days, months, weekdays))])
    assert valid_expression(converted), converted
    return converted


def _field(values: list[str]) -> str:
    return "*" if values == ["*"] else ",".join(str(v) for v in values)


def _fixed_offset(
    job: Job, expression: str, business_tz: ZoneInfo, server_tz: ZoneInfo, now: datetime
) -> int:
    """Minutes to add to a business time to get the server's, the same at every firing
    of the coming year; refuses when daylight saving time changes it."""
    firings = croniter(expression, now.astimezone(business_tz))
    year_end = now + timedelta(days=366)
    shifts: set[timedelta] = set()
    while (firing := firings.get_next(datetime)) < year_end:
        business_offset = firing.utcoffset()
        server_offset = firing.astimezone(server_tz).utcoffset()
        assert business_offset is not None and server_offset is not None
        shifts.add(server_offset - business_offset)
    if len(shifts) != 1:
        raise UsageError(
            f"{job.name} runs at {expression!r} in {business_tz.key}, which is not one fixed "
            f"time in {server_tz.key}: daylight saving time changes the offset between them. "
            "Run cron in UTC or in the business timezone (--server-timezone says which), "
            "or use --format kubernetes (CronJobs take a timeZone)"
        )
    (shift,) = shifts
    return int(shift.total_seconds()) // 60


def next_runs(
    expression: str, server_tz: ZoneInfo, now: datetime, count: int = NEXT_RUNS
) -> list[datetime]:
    """The next firings of a server-time expression after `now`, in the server's timezone."""
    firings = croniter(expression, now.astimezone(server_tz))
    return [firings.get_next(datetime) for _ in range(count)]


# --- the lines --------------------------------------------------------------------


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


def line_database_url(url: str, source: str, *, env_file: Path | None) -> str | None:
    """The database URL a line must carry, if any, by SPEC §2's precedence as cron will see it.

    From the config file: the line's --config carries it. The embedded default:
    the same for cron. From --database-url: cron sees only what the line says.
    From the environment: the env file carries it, else the line must. A URL
    with a password never goes on a line: it belongs in the config file or an
    env file.
    """
    if source in ("config file", "embedded default"):
        return None
    if source != "--database-url" and env_file is not None:
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
    )
    given = {
        "--config": setup.config_file,
        "--database-url": setup.database_url if database_url_option else None,
        "--executable": setup.executable if executable else None,
        "--log-dir": setup.log_dir if log_dir else None,
        "--env-file": setup.env_file,
        "--server-timezone": server_timezone_option,
        "--user": user,
    }
    options = [str(part) for name, value in given.items() if value for part in (name, value)]
    return replace(setup, options=tuple(options))


def recorded_options(block: str) -> dict[str, str]:
    """The install options a block records (see OPTIONS_LINE); none for an older block."""
    for line in block.splitlines():
        if line.startswith(OPTIONS_LINE):
            words = shlex.split(line.removeprefix(OPTIONS_LINE))
            pairs = dict(zip(words[::2], words[1::2], strict=False))
            return {name: value for name, value in pairs.items() if name in INSTALL_OPTIONS}
    return {}


def installed_options(target: CrontabTarget) -> dict[str, str]:
    """The options the installed block was installed with (none when there is no block)."""
    span = find_block(target.read(), target.description)
    return {} if span is None else recorded_options(span.text)


def crontab_target(file: Path | None, *, system: bool) -> CrontabTarget:
    """--file PATH, --system (/etc/cron.d/saathii-ops), else the user's crontab."""
    if file is not None and system:
        raise UsageError("--file and --system exclude each other")
    if system:
        return FileTarget(SYSTEM_CRONTAB)
    if file is not None:
        return FileTarget(file)
    return user_crontab()


def command_line(job: Job, setup: CronSetup, settings: Settings) -> str:
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
    program += [q(word) for word in job.command.split()]
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
    for value in (setup.executable, setup.log_dir, setup.config_file, setup.env_file):
        if value is not None and ("\n" in str(value) or "\r" in str(value)):
            raise UsageError(f"a path on a cron line cannot hold a line break: {str(value)!r}")
    for option in setup.options:
        if "\n" in option or "\r" in option:
            raise UsageError(f"an option of cron install cannot hold a line break: {option!r}")
    tab = CronTab(user=False) if setup.user else CronTab()
    for job in JOBS:
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


# --- the block in a crontab ---------------------------------------------------------


@dataclass(frozen=True)
class BlockSpan:
    start: int
    end: int
    text: str


def find_block(content: str, where: str) -> BlockSpan | None:
    """The installed block (from its begin marker to its end marker's line break)."""
    lines = content.splitlines(keepends=True)
    bare = [line.rstrip("\r\n") for line in lines]
    begins = [i for i, line in enumerate(bare) if _is_begin(line)]
    ends = [i for i, line in enumerate(bare) if line == BLOCK_END]
    if not begins and not ends:
        return None
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise UsageError(
            f"{where}: the {BLOCK_ID} block is damaged ({len(begins)} begin and {len(ends)} "
            "end markers): fix or delete it by hand, then install again"
        )
    start = sum(len(line) for line in lines[: begins[0]])
    end = sum(len(line) for line in lines[: ends[0] + 1])
    return BlockSpan(start, end, content[start:end])


def _is_begin(line: str) -> bool:
    return line == f"# BEGIN {BLOCK_ID}" or line.startswith(f"# BEGIN {BLOCK_ID} ")


def without_stamp(block: str) -> str:
    """The block minus the install time of its begin marker: what drift compares."""
    first, newline, rest = block.partition("\n")
    return first.partition(INSTALLED_AT)[0] + newline + rest


def installed_at(block: str) -> str | None:
    first = block.partition("\n")[0]
    return first.partition(INSTALLED_AT)[2] or None


def with_block(content: str, block: str, where: str) -> str:
    """The crontab with `block` in place of the installed one, else first: its lines then
    come before any environment line of the crontab, which therefore cannot change them."""
    span = find_block(content, where)
    if span is None:
        return block + content
    return content[: span.start] + block + content[span.end :]


def without_block(content: str, where: str) -> str:
    span = find_block(content, where)
    return content if span is None else content[: span.start] + content[span.end :]


# --- where the crontab lives ----------------------------------------------------------


class CrontabTarget(Protocol):
    description: str

    def read(self) -> str: ...

    def write(self, content: str) -> None: ...


# Text round-trips bytes exactly: no newline translation, undecodable bytes kept.
def decode_crontab(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def encode_crontab(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@dataclass
class FileTarget:
    path: Path
    description: str = ""

    def __post_init__(self) -> None:
        self.description = self.description or str(self.path)

    def read(self) -> str:
        try:
            return decode_crontab(self.path.read_bytes())
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise UsageError(f"cannot read {self.path}: {exc.strerror}") from None

    def write(self, content: str) -> None:
        """Atomically (cron never reads half a file), keeping the file's mode."""
        try:
            mode = self.path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644  # /etc/cron.d wants files no one else can write
        try:
            # a dot-name: neither Debian's cron nor cronie reads it from /etc/cron.d
            fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(encode_crontab(content))
            os.chmod(temporary, mode)
            os.replace(temporary, self.path)
        except OSError as exc:
            raise UsageError(f"cannot write {self.path}: {exc.strerror}") from None


@dataclass
class UserCrontab:
    """The crontab of the user running the command, through the `crontab` program."""

    program: str
    description: str = "the user crontab"

    def read(self) -> str:
        done = subprocess.run([self.program, "-l"], capture_output=True, check=False)
        if done.returncode == 0:
            return decode_crontab(done.stdout)
        if b"no crontab for" in done.stderr:
            return ""
        raise OpsError(f"crontab -l failed: {decode_crontab(done.stderr).strip()}")

    def write(self, content: str) -> None:
        done = subprocess.run(
            [self.program, "-"], input=encode_crontab(content), capture_output=True, check=False
        )
        if done.returncode != 0:
            raise OpsError(
                f"crontab could not install the new crontab: {decode_crontab(done.stderr)}"
            )


def user_crontab() -> UserCrontab:
    program = shutil.which("crontab")
    if program is None:
        raise UsageError(
            "no crontab program here (cron is not installed): install it "
            "(apt-get install cron, or dnf install cronie) or write a file with --file PATH"
        )
    return UserCrontab(program)


def installed_target(file: Path | None) -> CrontabTarget | None:
    """Where `status` looks for the installed block: --crontab-file PATH, else the system
    crontab when it exists, else the user's crontab when there is a `crontab` program;
    None when there is nowhere to look."""
    if file is not None:
        return FileTarget(file)
    if SYSTEM_CRONTAB.exists():
        return FileTarget(SYSTEM_CRONTAB)
    program = shutil.which("crontab")
    return UserCrontab(program) if program else None


def installed_jobs(target: CrontabTarget | None) -> frozenset[str] | None:
    """The jobs with an active line in the installed block (none when there is no block);
    None when the crontab cannot be read or its block is damaged: unknown, not an error."""
    if target is None:
        return None
    try:
        span = find_block(target.read(), target.description)
    except (OpsError, OSError):
        return None
    if span is None:
        return frozenset()
    return frozenset(
        (entry.comment or "?").split()[0]
        for entry in CronTab(tab=span.text)
        if entry.is_valid() and entry.is_enabled()
    )


def lock_path() -> Path:
    from platformdirs import user_data_path

    return user_data_path("saathii-ops") / "cron.lock"


@contextmanager
def crontab_lock() -> Iterator[None]:
    """Held around every read-modify-write of a crontab, so that two installs (or an
    install and a remove) cannot interleave; the second one is refused, not queued."""
    path = lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OpsError(
                "another saathii-ops cron install or remove is changing a crontab right now; "
                "try again when it is done"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- install, remove, show --------------------------------------------------------------


@dataclass
class CrontabChange:
    target: str
    changed: bool
    content: str  # the crontab after the change (what a dry-run prints)
    log_dir: str | None = None
    log_dir_created: bool = False


def install(
    target: CrontabTarget, setup: CronSetup, settings: Settings, now: datetime, *, dry_run: bool
) -> CrontabChange:
    """Write the block in place of the installed one. A block that differs only by its
    install time is left as it is. The log directory is made first: if that fails,
    nothing is written."""
    block = render_block(setup, settings, now)
    with crontab_lock():
        current = target.read()
        span = find_block(current, target.description)
        unchanged = span is not None and without_stamp(span.text) == without_stamp(block)
        content = current if unchanged else with_block(current, block, target.description)
        change = CrontabChange(target.description, not unchanged, content, str(setup.log_dir))
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
    return CrontabChange(target.description, content != current, content)


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


# --- Kubernetes ------------------------------------------------------------------------

# Kubernetes checks CronJobs about every 10 s: a shorter starting deadline can miss every run.
LEAST_STARTING_DEADLINE_SECONDS = 10
LONGEST_ACTIVE_DEADLINE_SECONDS = 3600
SUCCESSFUL_JOBS_KEPT = 3
FAILED_JOBS_KEPT = 5  # failed pods keep their logs for whoever investigates
INTERVAL_SAMPLE = 500  # firings looked at for a schedule's shortest interval


def shortest_interval_seconds(expression: str, tz: ZoneInfo, now: datetime) -> int:
    """The shortest time between two firings of `expression` in the coming year."""
    firings = croniter(expression, now.astimezone(tz))
    year_end = now + timedelta(days=366)
    previous = firings.get_next(datetime)
    shortest: timedelta | None = None
    for _ in range(INTERVAL_SAMPLE):
        firing = firings.get_next(datetime)
        gap = firing - previous
        shortest = gap if shortest is None else min(shortest, gap)
        if firing > year_end:
            break
        previous = firing
    assert shortest is not None
    return int(shortest.total_seconds())


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
