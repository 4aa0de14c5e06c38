"""`cron install | show | remove` run in-process, and what a crontab block holds: the
scheduling tests' tools. They write crontab files with --file only, never the machine's."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from crontab import CronTab
from typer.testing import CliRunner

from saathii_ops.cli.app import app
from saathii_ops.runtime.registry import get_job
from saathii_ops.scheduling import block as cron_block
from saathii_ops.scheduling import lines as cron_lines
from tests.conftest import Cli

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)  # 11:30 in Asia/Kolkata
LATER = datetime(2026, 12, 3, 9, 15, tzinfo=UTC)
STAMP = "2026-11-29T06:00:00Z"
EXAMPLE_EXECUTABLE = Path("/usr/local/bin/saathii-ops")

# a crontab someone already uses: comments, blank lines, environment lines,
# odd spacing, a CRLF line, a byte that is not UTF-8 and no final line break
FOREIGN = (
    b"# m h  dom mon dow   command\n"
    b"MAILTO=ops@example.com\n"
    b"SHELL=/bin/bash\n"
    b"\n"
    b"*/2  *  * * *\t/usr/bin/backup --fast   # nightly-ish\n"
    b"@reboot /opt/app/start.sh\r\n"
    b"\n"
    b"  # indented comment \xe9\n"
    b"30 4 * * 1 /usr/bin/report %Y"
)

BADGES = get_job("badges-assign")


def cron(*args: str, now: datetime = NOW) -> tuple[int, str, str]:
    result = Cli(None)("--now", now.isoformat(), "cron", *args)
    return result.exit_code, result.stdout, result.stderr


def cron_stdout_bytes(*args: str) -> bytes:
    """stdout exactly (the Cli fixture's text turns CRLF into LF)."""
    result = CliRunner().invoke(app, ["--now", NOW.isoformat(), "cron", *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout_bytes


def install_args(path: Path, log_dir: Path, executable: Path, *extra: str) -> list[str]:
    return [
        "install",
        "--file",
        str(path),
        "--log-dir",
        str(log_dir),
        "--executable",
        str(executable),
        "--server-timezone",
        "UTC",
        *extra,
    ]


def block_of(content: str) -> str:
    span = cron_block.find_block(content, "test")
    assert span is not None
    return span.text


def added_lines(diff: str) -> str:
    """What a dry-run's diff adds to a crontab that was empty (after its three headers)."""
    lines = diff.splitlines(keepends=True)[3:]
    assert all(line.startswith("+") for line in lines), diff
    return "".join(line[1:] for line in lines)


def entries(block: str) -> dict[str, tuple[str, str]]:
    """job -> (schedule, command), read back with python-crontab as cron would read it."""
    return {
        entry.comment.split()[0]: (entry.slices.clean_render(), entry.command)
        for entry in CronTab(tab=block)
    }


def setup_for(
    log_dir: Path, executable: Path = EXAMPLE_EXECUTABLE, **changes: object
) -> cron_lines.CronSetup:
    setup = cron_lines.CronSetup(executable=executable, log_dir=log_dir, server_tz=ZoneInfo("UTC"))
    return replace(setup, **changes)  # type: ignore[arg-type]
