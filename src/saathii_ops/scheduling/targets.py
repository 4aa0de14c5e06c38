"""Where the crontab lives (the user's, /etc/cron.d, any file), reading and writing it
byte for byte, and the lock held around every read-modify-write."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from saathii_ops.errors import OpsError, UsageError
from saathii_ops.files import read_regular_file
from saathii_ops.scheduling.block import find_block, recorded_options
from saathii_ops.scheduling.schedule_target import (
    ScheduleTarget,
    recorded_target,
    same_target,
)

SYSTEM_CRONTAB = Path("/etc/cron.d/saathii-ops")


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
            return decode_crontab(read_regular_file(self.path, "crontab file"))
        except FileNotFoundError:
            return ""

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


def installed_jobs(target: CrontabTarget | None, wanted: ScheduleTarget) -> frozenset[str] | None:
    """The jobs with an active line in the installed block, if that block targets `wanted`
    (none when there is no block, or one of another config file or database); None when the
    crontab cannot be read or its block is damaged: unknown, not an error."""
    from crontab import CronTab

    if target is None:
        return None
    try:
        span = find_block(target.read(), target.description)
    except (OpsError, OSError):
        return None
    if span is None or not same_target(recorded_target(recorded_options(span.text)), wanted):
        return frozenset()
    return frozenset(
        (entry.comment or "?").split()[0]
        for entry in CronTab(tab=span.text)
        if entry.is_valid() and entry.is_enabled()
    )


def other_target(target: CrontabTarget | None, wanted: ScheduleTarget) -> ScheduleTarget | None:
    """The target of the installed block when it is not `wanted` (None: no block, one of
    `wanted`, or a crontab that cannot be read)."""
    try:
        span = None if target is None else find_block(target.read(), target.description)
    except (OpsError, OSError):
        return None
    if span is None:
        return None
    installed = recorded_target(recorded_options(span.text))
    return None if same_target(installed, wanted) else installed


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
