"""`cron show` and `cron install --check` (SPEC §10): the installed block, its next runs
and its drift from what the same install would write now, its install time aside."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest

from saathii_ops.runtime.registry import JOBS
from saathii_ops.scheduling import block as cron_block
from tests.conftest import Cli
from tests.support.cron import (
    FOREIGN,
    LATER,
    NOW,
    STAMP,
    block_of,
    cron,
    install_args,
)


def test_check_reports_drift_and_ignores_only_the_install_time(
    tmp_path: Path, crontab_file: Path, executable: Path
) -> None:
    log_dir = tmp_path / "logs"
    args = install_args(crontab_file, log_dir, executable)
    code, out, _ = cron(*args, "--check")
    assert code == 1  # nothing installed yet
    assert "installed: no" in out

    cron(*args)
    code, out, _ = cron(*args, "--check", now=LATER)
    assert code == 0
    assert "up_to_date: yes" in out

    edited = crontab_file.read_text("utf-8", "surrogateescape").replace(
        "*/5 * * * *", "*/7 * * * *"
    )
    crontab_file.write_text(edited, "utf-8", "surrogateescape")
    code, out, _ = cron(*args, "--check")
    assert code == 1
    assert "\n-*/7 * * * * PATH=" in out and "\n+*/5 * * * * PATH=" in out
    assert crontab_file.read_text("utf-8", "surrogateescape") == edited

    # the marker's text itself is compared, apart from the time
    crontab_file.write_bytes(FOREIGN)
    cron(*args)
    crontab_file.write_text(
        crontab_file.read_text("utf-8", "surrogateescape").replace("do not edit", "edit me"),
        "utf-8",
        "surrogateescape",
    )
    assert cron(*args, "--check")[0] == 1


def test_show_prints_the_block_the_next_runs_and_the_drift(
    tmp_path: Path, crontab_file: Path, executable: Path
) -> None:
    log_dir = tmp_path / "logs"
    args = install_args(crontab_file, log_dir, executable)
    cron(*args)
    show_args = ["show", *args[1:], "--json"]
    code, out, err = cron(*show_args)
    assert code == 0, err
    state = json.loads(out)
    assert (state["installed"], state["installed_at"], state["up_to_date"]) == (True, STAMP, True)
    assert state["block"] == block_of(crontab_file.read_text("utf-8", "surrogateescape"))
    runs = {r["job"]: r for r in state["next_runs"]}
    assert list(runs) == [job.name for job in JOBS]
    assert runs["presence-cleanup"]["server_time"] == [
        "2026-11-29T06:05:00+00:00",
        "2026-11-29T06:10:00+00:00",
        "2026-11-29T06:15:00+00:00",
    ]
    assert runs["logs-prune"]["server_time"][0] == "2026-11-30T01:00:00+00:00"
    assert runs["badges-assign"]["schedule"] == "31 18 * * *"
    assert runs["badges-assign"]["server_time"][0] == "2026-11-29T18:31:00+00:00"
    assert runs["badges-assign"]["business_time"] == [
        "2026-11-30T00:01:00+05:30",
        "2026-12-01T00:01:00+05:30",
        "2026-12-02T00:01:00+05:30",
    ]

    code, out, _ = cron(*show_args[:-1])
    assert code == 0
    assert "installed: yes, at 2026-11-29T06:00:00Z\n  up_to_date: yes\n" in out
    assert "# END saathii-ops\n" in out
    assert (
        "job=presence-cleanup  schedule=*/5 * * * *  "
        "next runs (UTC)=2026-11-29 06:05, 2026-11-29 06:10, 2026-11-29 06:15  "
        "in Asia/Kolkata=2026-11-29 11:35, 2026-11-29 11:40, 2026-11-29 11:45"
    ) in out

    args_elsewhere = [*show_args[:-1]]
    args_elsewhere[args_elsewhere.index(str(log_dir))] = str(tmp_path / "elsewhere")
    code, out, _ = cron(*args_elsewhere)
    assert code == 0
    assert "up_to_date: no: `cron install` would change it" in out
    assert "+*/5 * * * * PATH=" in out


@pytest.mark.parametrize(
    "option",
    [
        "--log-dir",
        "--env-file",
        "--user",
        "--server-timezone",
        "--executable",
        "--config",
        "--database-url",
    ],
)
def test_a_block_just_installed_with_an_option_is_up_to_date_without_it(
    tmp_path: Path, executable: Path, option: str
) -> None:
    """show and --check compare with what the same install would write: an option not given
    to them is the one the block records."""
    path = tmp_path / "crontab"
    other_executable = tmp_path / "other-bin" / "saathii-ops"
    other_executable.parent.mkdir()
    other_executable.write_bytes(executable.read_bytes())
    other_executable.chmod(0o755)
    (tmp_path / "ops.env").write_text("SAATHII_TIMEZONE=Asia/Kolkata\n")
    (tmp_path / "ops.toml").write_text('log_dir = "/srv/saathii/logs"\n')
    value = {
        "--log-dir": str(tmp_path / "var log"),
        "--env-file": str(tmp_path / "ops.env"),
        "--user": getpass.getuser(),
        "--server-timezone": "Asia/Kolkata",
        "--executable": str(other_executable),
        "--config": str(tmp_path / "ops.toml"),
        "--database-url": "postgresql://ops@db.internal/saathii",
    }[option]
    given = [option, value]
    global_options = given if option in ("--config", "--database-url") else []
    install_options = [] if global_options else given
    base = ["--file", str(path), "--log-dir", str(tmp_path / "logs")]
    if option == "--log-dir":
        base = base[:2]
    if option != "--executable":
        base += ["--executable", str(executable)]
    if option != "--server-timezone":
        base += ["--server-timezone", "UTC"]

    result = Cli(None)(
        "--now", NOW.isoformat(), *global_options, "cron", "install", *base, *install_options
    )
    assert result.exit_code == 0, result.stderr
    block = block_of(path.read_text())
    assert value in cron_block.recorded_options(block).values()

    for command in (["install", "--check"], ["show"]):
        result = Cli(None)("--now", LATER.isoformat(), "cron", *command, "--file", str(path))
        assert result.exit_code == 0, result.stdout
        assert "up_to_date: yes" in result.stdout, result.stdout
    # given again with another value, it is drift
    if option == "--log-dir":
        elsewhere = ["--log-dir", str(tmp_path / "elsewhere")]
        result = Cli(None)("cron", "install", "--check", "--file", str(path), *elsewhere)
        assert result.exit_code == 1


def test_a_block_installed_before_options_were_recorded_compares_with_the_defaults(
    tmp_path: Path, executable: Path
) -> None:
    path, log_dir = tmp_path / "crontab", tmp_path / "logs"
    assert cron(*install_args(path, log_dir, executable))[0] == 0
    content = path.read_text()
    old = "".join(
        line for line in content.splitlines(keepends=True) if "installed with:" not in line
    )
    path.write_text(old)
    code, _, _ = cron("install", "--check", "--file", str(path), "--executable", str(executable))
    assert code == 1  # the log directory and the timezone are the defaults' now
    assert cron(*install_args(path, log_dir, executable), "--check")[0] == 1  # the line itself
    assert cron(*install_args(path, log_dir, executable))[0] == 0
    assert "installed with:" in path.read_text()
