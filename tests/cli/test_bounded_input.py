"""Files a person names are read only when they are regular files of sensible size, and
settings that would make a run fail are refused at load (SPEC §2): one line,
exit 2, and never a read that does not end."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saathii_ops.cli.app import app
from saathii_ops.files import MAX_TEXT_FILE_BYTES


def _invoke(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(argv), env=env)
    return result.exit_code, result.stdout, result.stderr


def _not_regular(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A path that is not a regular file, and how the error names it."""
    if kind == "fifo":
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        threading.Thread(target=_unblock, args=(fifo,), daemon=True).start()
        return fifo, "a FIFO"
    if kind == "directory":
        return tmp_path, "a directory"
    return Path(kind), "a character device"


def _unblock(fifo: Path) -> None:
    """Code that opens the FIFO and waits for a writer (the bug) gets one after 3 s, which
    closes at once, as often as it opens it for half a minute: the test then fails instead
    of hanging."""
    time.sleep(3)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):  # no reader now (the code under test is done)
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        time.sleep(0.1)


NOT_REGULAR = ["/dev/zero", "/dev/full", "fifo", "directory"]


@pytest.mark.parametrize("kind", NOT_REGULAR)
def test_a_config_file_that_is_not_a_regular_file_is_one_line(kind: str, tmp_path: Path) -> None:
    path, named = _not_regular(tmp_path, kind)
    code, stdout, stderr = _invoke("--config", str(path), "jobs", "list")
    assert (code, stdout) == (2, "")
    assert stderr == f"error: config file {path} is {named}, not a regular file\n"


@pytest.mark.parametrize("kind", NOT_REGULAR)
@pytest.mark.parametrize(
    "command", [["cron", "show"], ["cron", "install", "--dry-run"], ["cron", "remove"]]
)
def test_a_crontab_file_that_is_not_a_regular_file_is_one_line(
    kind: str, command: list[str], tmp_path: Path
) -> None:
    path, named = _not_regular(tmp_path, kind)
    env = {"SAATHII_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "SAATHII_LOG_DIR": "/tmp"}
    code, stdout, stderr = _invoke(*command, "--file", str(path), env=env)
    assert (code, stdout) == (2, "")
    if kind == "directory":  # the option itself refuses a directory
        assert stderr.startswith(f"error: Invalid value for '--file': file '{path}' is a directory")
        assert stderr.count("\n") == 1
    else:
        assert stderr == f"error: crontab file {path} is {named}, not a regular file\n"


def test_a_config_file_larger_than_the_cap_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text("# padding\n" * (MAX_TEXT_FILE_BYTES // 10 + 1))
    code, _, stderr = _invoke("--config", str(config), "jobs", "list")
    assert code == 2
    assert stderr == (
        f"error: config file {config} is larger than 1024 KiB: "
        "not a config file saathii-ops reads\n"
    )


def test_a_crontab_file_larger_than_the_cap_is_refused_and_kept(tmp_path: Path) -> None:
    crontab = tmp_path / "crontab"
    crontab.write_text("# padding\n" * (MAX_TEXT_FILE_BYTES // 10 + 1))
    before = crontab.read_bytes()
    code, _, stderr = _invoke("cron", "remove", "--file", str(crontab))
    assert code == 2
    assert stderr == (
        f"error: crontab file {crontab} is larger than 1024 KiB: "
        "not a crontab file saathii-ops reads\n"
    )
    assert crontab.read_bytes() == before


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("logs", "must be an absolute path, not 'logs'"),
        ("./var/log", "must be an absolute path, not 'var/log'"),
        ("", "must be an absolute path, not '.'"),
    ],
)
def test_a_relative_log_dir_is_refused_at_load(value: str, reason: str, tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(f'log_dir = "{value}"\n')
    for argv, env in (
        (["--config", str(config), "logs", "prune", "--dry-run"], None),
        (["jobs", "list"], {"SAATHII_LOG_DIR": value}),
    ):
        code, _, stderr = _invoke(*argv, env=env)  # a job's stdout has its log line
        assert code == 2
        assert stderr == f"error: invalid configuration: log_dir: Value error, {reason}\n"


def test_a_log_dir_that_is_a_file_is_refused_at_load(tmp_path: Path) -> None:
    a_file = tmp_path / "logs"
    a_file.write_text("")
    code, _, stderr = _invoke("logs", "prune", "--dry-run", env={"SAATHII_LOG_DIR": str(a_file)})
    assert code == 2
    assert stderr == (
        f"error: invalid configuration: log_dir: Value error, {a_file} is not a directory\n"
    )


def test_a_missing_absolute_log_dir_is_accepted(tmp_path: Path) -> None:
    env = {"SAATHII_LOG_DIR": str(tmp_path / "new"), "SAATHII_DATABASE_URL": "sqlite://"}
    code, _, stderr = _invoke("cron", "show", "--file", str(tmp_path / "crontab"), env=env)
    assert code == 0, stderr


def test_no_counted_call_status_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text("counted_call_statuses = []\n")
    code, _, stderr = _invoke("--config", str(config), "badges", "assign", "--dry-run")
    assert code == 2
    assert stderr.startswith("error: invalid configuration: counted_call_statuses: ")
    assert stderr.count("\n") == 1
