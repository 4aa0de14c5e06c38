"""Scheduling (SPEC §10): `cron install | show | remove`, the lines, crontab.example, Kubernetes.

These tests write crontab files with --file only: never the crontab of the machine.
None needs a database.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import shutil
import stat
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from crontab import CronTab
from typer.testing import CliRunner

from saathii_ops.cli.app import app
from saathii_ops.errors import UsageError
from saathii_ops.runtime.registry import JOBS, get_job
from saathii_ops.scheduling import block as cron_block
from saathii_ops.scheduling import expressions, targets
from saathii_ops.scheduling import lines as cron_lines
from saathii_ops.settings import Settings
from tests.conftest import REPO_ROOT, Cli

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


@pytest.fixture
def crontab_file(tmp_path: Path) -> Path:
    path = tmp_path / "crontab"
    path.write_bytes(FOREIGN)
    return path


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


# --- install, re-install, remove -------------------------------------------------------


def test_install_twice_then_remove_keeps_every_foreign_byte(
    tmp_path: Path, crontab_file: Path, executable: Path
) -> None:
    log_dir = tmp_path / "logs"
    code, out, err = cron(*install_args(crontab_file, log_dir, executable))
    assert code == 0, err
    assert out == f"installed the saathii-ops block into {crontab_file} (logs in {log_dir})\n"
    first = crontab_file.read_bytes()
    block = block_of(first.decode("utf-8", "surrogateescape"))
    assert first == block.encode() + FOREIGN
    assert block.startswith(f"{cron_block.BLOCK_BEGIN} installed {STAMP}\n")
    assert block.endswith("# END saathii-ops\n")

    # the same block later: nothing to change, the install time stays
    code, out, _ = cron(*install_args(crontab_file, log_dir, executable), now=LATER)
    assert code == 0
    assert out == f"{crontab_file} already holds this block: nothing changed\n"
    assert crontab_file.read_bytes() == first

    # a different block replaces the installed one, in place
    other_logs = tmp_path / "other logs"
    code, _, err = cron(*install_args(crontab_file, other_logs, executable), now=LATER)
    assert code == 0, err
    second = crontab_file.read_bytes()
    assert second.count(b"# BEGIN saathii-ops") == 1 and second.count(b"# END saathii-ops") == 1
    assert second.endswith(FOREIGN)
    assert b"installed 2026-12-03T09:15:00Z" in second
    assert str(other_logs).encode() in second

    code, out, _ = cron("remove", "--file", str(crontab_file))
    assert code == 0
    assert out == f"removed the saathii-ops block from {crontab_file}\n"
    assert crontab_file.read_bytes() == FOREIGN
    code, out, _ = cron("remove", "--file", str(crontab_file))
    assert out == f"no saathii-ops block in {crontab_file}: nothing changed\n"
    assert crontab_file.read_bytes() == FOREIGN


def test_an_existing_block_is_replaced_where_it_is(tmp_path: Path, executable: Path) -> None:
    path = tmp_path / "crontab"
    path.write_text(
        "MAILTO=x\n# BEGIN saathii-ops (an older version)\n* * * * * old\n# END saathii-ops\n"
        "0 3 * * * /usr/bin/theirs\n"
    )
    code, _, err = cron(*install_args(path, tmp_path / "logs", executable))
    assert code == 0, err
    content = path.read_text()
    assert content.startswith("MAILTO=x\n# BEGIN saathii-ops (managed by")
    assert content.endswith("# END saathii-ops\n0 3 * * * /usr/bin/theirs\n")
    assert "old" not in content


def test_a_damaged_block_is_refused(tmp_path: Path, executable: Path) -> None:
    path = tmp_path / "crontab"
    damaged = "# BEGIN saathii-ops\n* * * * * a\n# BEGIN saathii-ops\n# END saathii-ops\n"
    path.write_text(damaged)
    code, _, err = cron(*install_args(path, tmp_path / "logs", executable))
    assert code == 2
    assert "the saathii-ops block is damaged (2 begin and 1 end markers)" in err
    assert path.read_text() == damaged


def patched(path: Path, diff: bytes, tmp_path: Path) -> bytes:
    """`path` as `patch` leaves it after applying `diff` (to a copy)."""
    copy = tmp_path / "patched"
    copy.write_bytes(path.read_bytes() if path.exists() else b"")
    done = subprocess.run(
        ["patch", "--quiet", str(copy)], input=diff, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return copy.read_bytes()


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs patch(1) to apply the diff")
def test_dry_runs_print_the_crontabs_unified_diff_and_change_nothing(
    tmp_path: Path, crontab_file: Path, executable: Path
) -> None:
    """SPEC §10: `--dry-run` shows the crontab's diff; applied with patch(1), it gives
    exactly the crontab the real install and remove write (every foreign byte kept)."""
    log_dir = tmp_path / "logs"
    out = cron_stdout_bytes(*install_args(crontab_file, log_dir, executable, "--dry-run"))
    assert out.startswith(f"--- {crontab_file} (now)\n+++ {crontab_file} (after)\n".encode())
    assert f"\n+{cron_block.BLOCK_BEGIN} installed {STAMP}\n".encode() in out
    assert crontab_file.read_bytes() == FOREIGN
    assert not log_dir.exists()
    after_install = patched(crontab_file, out, tmp_path)

    cron(*install_args(crontab_file, log_dir, executable))
    installed = crontab_file.read_bytes()
    assert after_install == installed
    out = cron_stdout_bytes("remove", "--file", str(crontab_file), "--dry-run")
    assert out.startswith(f"--- {crontab_file} (now)\n".encode())
    assert patched(crontab_file, out, tmp_path) == FOREIGN
    assert crontab_file.read_bytes() == installed
    code, out, _ = cron(*install_args(crontab_file, log_dir, executable, "--dry-run"))
    assert (code, out) == (0, f"{crontab_file}: nothing would change\n")


def test_a_dry_run_into_a_missing_file_creates_nothing(tmp_path: Path, executable: Path) -> None:
    path = tmp_path / "new-crontab"
    code, out, _ = cron(*install_args(path, tmp_path / "logs", executable, "--dry-run"))
    assert code == 0
    added = added_lines(out)
    assert added == block_of(added)
    assert not path.exists()


# --- the lines -------------------------------------------------------------------------


def test_one_line_per_registered_job_with_its_schedule(tmp_path: Path, executable: Path) -> None:
    """Holds for whatever JOBS registers (all five once every job is built)."""
    path, log_dir = tmp_path / "crontab", tmp_path / "logs"
    cron(*install_args(path, log_dir, executable))
    found = entries(path.read_text())
    assert list(found) == [job.name for job in JOBS]
    utc, settings = ZoneInfo("UTC"), Settings()
    for job in JOBS:
        expression, command = found[job.name]
        assert expression == expressions.server_schedule(job, settings, utc, NOW)
        assert command.startswith("PATH=")
        assert f" {executable} {job.command} " in command
        assert "flock" not in command  # the job's own lock records a skipped run
        assert command.endswith(f" >> {log_dir}/{job.name}.log 2>&1")


def test_the_lines_of_the_jobs_built_here_exactly(tmp_path: Path) -> None:
    setup = setup_for(Path("/var/log/saathii"), config_file=Path("/etc/saathii/ops.toml"))
    block = cron_lines.render_block(setup, Settings(), NOW)
    prefix = (
        "PATH=/usr/local/bin:/usr/bin:/bin /usr/local/bin/saathii-ops "
        "--config /etc/saathii/ops.toml {command} >> /var/log/saathii/{job}.log 2>&1"
    )
    assert (
        "# presence-cleanup\n*/5 * * * * "
        + prefix.format(job="presence-cleanup", command="presence cleanup")
        + "\n"
    ) in block
    assert (
        "# logs-prune\n0 1 * * * " + prefix.format(job="logs-prune", command="logs prune") + "\n"
    ) in block
    assert (
        "# badges-assign (1 0 * * * in Asia/Kolkata)\n31 18 * * * "
        + prefix.format(job="badges-assign", command="badges assign")
        + "\n"
    ) in block
    assert block.startswith(
        f"{cron_block.BLOCK_BEGIN} installed {STAMP}\n"
        "# times are UTC (cron's timezone); business timezone Asia/Kolkata\n"
    )


def test_paths_are_quoted_and_percent_escaped_and_the_line_runs(
    tmp_path: Path, executable: Path
) -> None:
    """Runs a line as cron would (`\\%` becomes `%`, then /bin/sh -c) in an empty environment."""
    log_dir = tmp_path / "logs 100% it's"
    path = tmp_path / "crontab"
    code, _, err = cron(*install_args(path, log_dir, executable))
    assert code == 0, err
    content = path.read_text()
    assert "'" + str(tmp_path) + "/logs 100\\% it'\"'\"'s/presence-cleanup.log'" in content
    line = next(line for line in content.splitlines() if line.startswith("*/5 "))
    command = line.split(" ", 5)[5].replace("\\%", "%")
    subprocess.run(["/bin/sh", "-c", command], env={}, check=True)
    log = (log_dir / "presence-cleanup.log").read_text()
    assert log == "ran: presence cleanup\n"
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o750


def test_a_system_crontab_has_the_user_field(tmp_path: Path, executable: Path) -> None:
    path = tmp_path / "saathii-ops"
    args = install_args(path, tmp_path / "logs", executable, "--user", "saathii", "--dry-run")
    code, out, err = cron(*args)
    assert code == 0, err
    tab = CronTab(tab=added_lines(out), user=False)
    assert [(entry.user, entry.comment.split()[0]) for entry in tab] == [
        ("saathii", job.name) for job in JOBS
    ]
    # as root for a user that does not exist, the log directory cannot be given to it
    if os.geteuid() == 0:
        code, _, err = cron(*args[:-1])
        assert code == 2 and "no such user: 'saathii'" in err
        assert not path.exists()


def test_system_writes_etc_cron_d(
    tmp_path: Path, executable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_file = tmp_path / "cron.d" / "saathii-ops"
    system_file.parent.mkdir()
    monkeypatch.setattr(targets, "SYSTEM_CRONTAB", system_file)
    code, _, err = cron(
        "install",
        "--system",
        "--log-dir",
        str(tmp_path / "logs"),
        "--executable",
        str(executable),
        "--server-timezone",
        "UTC",
    )
    assert code == 0, err
    user = getpass.getuser()
    assert {entry.user for entry in CronTab(tabfile=str(system_file), user=False)} == {user}
    assert stat.S_IMODE(system_file.stat().st_mode) == 0o644
    assert [p.name for p in system_file.parent.iterdir()] == ["saathii-ops"]


def test_a_bad_expression_in_the_settings_is_refused_before_anything_is_written(
    tmp_path: Path, crontab_file: Path, executable: Path
) -> None:
    log_dir = tmp_path / "logs"
    for schedules, message in (
        (
            '"presence-cleanup" = "61 * * * *"',
            "schedules.presence-cleanup: '61 * * * *' is not a valid cron expression",
        ),
        # croniter alone would accept these; cron would not
        ('"logs-prune" = "0 0 L * *"', "schedules.logs-prune: '0 0 L * *' is not a valid"),
        ('"logs-prune" = "0 0 * * * *"', "schedules.logs-prune: '0 0 * * * *' is not a valid"),
        ('"log-prune" = "0 2 * * *"', "schedules: unknown job 'log-prune'; known jobs: "),
    ):
        config = tmp_path / "ops.toml"
        config.write_text(f"[schedules]\n{schedules}\n")
        result = Cli(None)(
            "--config", str(config), "cron", *install_args(crontab_file, log_dir, executable)
        )
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: invalid configuration: {message}"), result.stderr
        assert result.stderr.count("\n") == 1
        assert crontab_file.read_bytes() == FOREIGN
        assert not log_dir.exists()


def test_a_schedule_from_the_settings_replaces_the_registrys(
    tmp_path: Path, executable: Path
) -> None:
    config = tmp_path / "ops.toml"
    config.write_text('[schedules]\n"logs-prune" = "30 2 * * *"\n')
    path = tmp_path / "crontab"
    result = Cli(None)(
        "--config", str(config), "cron", *install_args(path, tmp_path / "logs", executable)
    )
    assert result.exit_code == 0, result.stderr
    assert entries(path.read_text())["logs-prune"][0] == "30 2 * * *"


# --- time zones ------------------------------------------------------------------------


def test_badges_fire_at_0001_business_time_on_a_utc_server_and_on_a_kolkata_server() -> None:
    settings = Settings()  # business timezone Asia/Kolkata
    badges = BADGES
    utc, kolkata = ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata")
    assert expressions.server_schedule(badges, settings, utc, NOW) == "31 18 * * *"
    assert expressions.server_schedule(badges, settings, kolkata, NOW) == "1 0 * * *"
    # and croniter agrees: the next UTC firing is 00:01 of the next day in Kolkata
    (first, *_) = expressions.next_runs("31 18 * * *", utc, NOW)
    assert first == datetime(2026, 11, 29, 18, 31, tzinfo=utc)
    assert first.astimezone(kolkata) == datetime(2026, 11, 30, 0, 1, tzinfo=kolkata)
    # a server-time job is never converted
    prune = get_job("logs-prune")
    assert expressions.server_schedule(prune, settings, kolkata, NOW) == "0 1 * * *"


@pytest.mark.parametrize(
    ("expression", "server", "converted"),
    [
        ("1 0 * * 1", "UTC", "31 18 * * 0"),  # Monday 00:01 IST is Sunday 18:31 UTC
        ("1 0 * * 0,6", "UTC", "31 18 * * 5,6"),
        ("45 6 * * *", "UTC", "15 1 * * *"),
        ("30 20 * * *", "Asia/Tokyo", "0 0 * * *"),  # the next day in Tokyo
        ("1 0 1 * *", "Asia/Kolkata", "1 0 1 * *"),
    ],
)
def test_business_time_conversions(expression: str, server: str, converted: str) -> None:
    job = replace(BADGES, schedule=expression)
    assert expressions.server_schedule(job, Settings(), ZoneInfo(server), NOW) == converted


@pytest.mark.parametrize(
    ("business", "expression", "server", "message"),
    [
        ("Asia/Kolkata", "1 0 * * *", "Europe/London", "daylight saving time changes the offset"),
        ("America/New_York", "1 0 * * *", "UTC", "daylight saving time changes the offset"),
        ("Asia/Kolkata", "1 0 1 * *", "UTC", "falls on another day in UTC"),
        ("Asia/Kolkata", "*/5 0 * * *", "UTC", "only a schedule with one time of day"),
    ],
)
def test_conversions_that_cron_cannot_express_are_refused(
    business: str, expression: str, server: str, message: str
) -> None:
    job = replace(BADGES, schedule=expression)
    with pytest.raises(UsageError, match=message):
        expressions.server_schedule(job, Settings(timezone=business), ZoneInfo(server), NOW)


def test_the_badge_line_in_the_installed_block(tmp_path: Path, executable: Path) -> None:
    for server, expected in (("UTC", "31 18 * * *"), ("Asia/Kolkata", "1 0 * * *")):
        path = tmp_path / f"crontab-{server.replace('/', '-')}"
        args = install_args(path, tmp_path / "logs", executable)
        args[args.index("UTC")] = server
        code, _, err = cron(*args)
        assert code == 0, err
        content = path.read_text()
        assert entries(content)["badges-assign"][0] == expected
        assert "# badges-assign (1 0 * * * in Asia/Kolkata)\n" in content


def test_a_server_timezone_with_daylight_saving_is_refused_with_the_ways_out(
    tmp_path: Path, crontab_file: Path, executable: Path
) -> None:
    args = install_args(crontab_file, tmp_path / "logs", executable)
    args[args.index("UTC")] = "America/New_York"
    code, _, err = cron(*args)
    assert code == 2
    assert "not one fixed time in America/New_York" in err
    assert "--format kubernetes" in err
    assert crontab_file.read_bytes() == FOREIGN


def test_the_machine_timezone_is_read_from_etc_localtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    localtime = tmp_path / "localtime"
    monkeypatch.setattr(expressions, "LOCALTIME", localtime)
    monkeypatch.setattr(expressions, "TIMEZONE_FILE", tmp_path / "timezone")
    assert expressions.machine_timezone() == "UTC"  # glibc's default without the file
    localtime.symlink_to("/usr/share/zoneinfo/Asia/Kolkata")
    assert expressions.machine_timezone() == "Asia/Kolkata"
    localtime.unlink()
    localtime.write_bytes(b"TZif")
    with pytest.raises(UsageError, match="--server-timezone"):
        expressions.machine_timezone()
    (tmp_path / "timezone").write_text("Europe/Paris\n")
    assert expressions.machine_timezone() == "Europe/Paris"


# --- configuration by reference, never a password ----------------------------------------


def test_no_line_carries_a_password(
    tmp_path: Path, executable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cr3t-pw"
    url = f"postgresql://ops:{secret}@db.internal/saathii"
    log_dir = tmp_path / "logs"

    # inline, the password would be on the line: refused, nothing written
    path = tmp_path / "refused"
    for runner_args, env in (
        (["--database-url", url], {}),
        ([], {"SAATHII_DATABASE_URL": url}),
        ([], {"DATABASE_URL": url}),
        (["--database-url", f"postgresql://ops@db.internal/saathii?password={secret}"], {}),
    ):
        with monkeypatch.context() as m:
            for name, value in env.items():
                m.setenv(name, value)
            result = Cli(None)(*runner_args, "cron", *install_args(path, log_dir, executable))
        assert result.exit_code == 2
        assert "holds a password, which never goes on a cron line" in result.stderr
        assert secret not in result.stderr + result.stdout
        assert not path.exists()

    # by reference: the config file that holds it
    config = tmp_path / "ops.toml"
    config.write_text(f'database_url = "{url}"\n')
    path = tmp_path / "by-config"
    result = Cli(None)("--config", str(config), "cron", *install_args(path, log_dir, executable))
    assert result.exit_code == 0, result.stderr
    content = path.read_text()
    assert secret not in content
    assert f"{executable} --config {config} presence cleanup" in content

    # by reference: an env file the lines source
    env_file = tmp_path / "ops.env"
    env_file.write_text(f"SAATHII_DATABASE_URL={url}\n")
    monkeypatch.setenv("SAATHII_DATABASE_URL", url)
    path = tmp_path / "by-env-file"
    result = Cli(None)(
        "cron", *install_args(path, log_dir, executable, "--env-file", str(env_file))
    )
    assert result.exit_code == 0, result.stderr
    content = path.read_text()
    assert secret not in content
    assert f"*/5 * * * * set -a && . {env_file} && set +a && PATH=" in content


def test_the_apps_database_url_does_not_stop_an_install_with_a_config_file(
    tmp_path: Path, executable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the app's server DATABASE_URL holds the app's password; the config file's database
    is the one in use (and on the lines, by --config), so install has nothing to refuse."""
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://app:app-s3cret@db.internal/app")
    config = tmp_path / "ops.toml"
    config.write_text('database_url = "postgresql://ops@db.internal/saathii"\n')
    path = tmp_path / "crontab"
    result = Cli(None)(
        "--config", str(config), "cron", *install_args(path, tmp_path / "logs", executable)
    )
    assert result.exit_code == 0, result.stderr
    content = path.read_text()
    assert f"{executable} --config {config} coins deduct" in content
    assert "app-s3cret" not in content and "--database-url" not in content


def test_a_url_without_a_password_is_passed_on_the_line(tmp_path: Path, executable: Path) -> None:
    path = tmp_path / "crontab"
    url = "postgresql://ops@db.internal:5432/saathii?sslmode=require"
    result = Cli(url)("cron", *install_args(path, tmp_path / "logs", executable))
    assert result.exit_code == 0, result.stderr
    assert f"{executable} --database-url '{url}' presence cleanup" in path.read_text()


def test_an_env_file_runs_the_line_with_its_settings(tmp_path: Path, executable: Path) -> None:
    executable.write_text('#!/bin/sh\necho "url=$SAATHII_DATABASE_URL tz=$SAATHII_TIMEZONE $*"\n')
    env_file = tmp_path / "ops.env"
    env_file.write_text("SAATHII_DATABASE_URL=sqlite:////x.db\nSAATHII_TIMEZONE=UTC\n")
    path, log_dir = tmp_path / "crontab", tmp_path / "logs"
    code, _, err = cron(*install_args(path, log_dir, executable, "--env-file", str(env_file)))
    assert code == 0, err
    line = next(line for line in path.read_text().splitlines() if line.startswith("0 1 "))
    subprocess.run(["/bin/sh", "-c", line.split(" ", 5)[5]], env={}, check=True)
    assert (log_dir / "logs-prune.log").read_text() == "url=sqlite:////x.db tz=UTC logs prune\n"

    code, _, err = cron(*install_args(path, log_dir, executable, "--env-file", "/nope.env"))
    assert code == 2 and "--env-file: /nope.env is not a file" in err


# --- the log directory, the lock, the crontab program ----------------------------------


def test_the_log_directory_is_created_or_the_install_refused(
    tmp_path: Path, crontab_file: Path, executable: Path
) -> None:
    log_dir = tmp_path / "var" / "log" / "saathii"
    code, _, err = cron(*install_args(crontab_file, log_dir, executable))
    assert code == 0, err
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o750

    crontab_file.write_bytes(FOREIGN)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = cron(*install_args(crontab_file, blocker / "logs", executable))
    assert code == 2
    assert err.startswith(f"error: cannot create the log directory {blocker}/logs: ")
    assert crontab_file.read_bytes() == FOREIGN


def test_a_second_install_while_one_holds_the_lock_is_refused(
    tmp_path: Path, crontab_file: Path, executable: Path
) -> None:
    lock = targets.lock_path()
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        code, _, err = cron(*install_args(crontab_file, tmp_path / "logs", executable))
        assert code == 1
        assert "another saathii-ops cron install or remove is changing a crontab" in err
        code, _, err = cron("remove", "--file", str(crontab_file))
        assert code == 1
    assert crontab_file.read_bytes() == FOREIGN
    code, _, _ = cron(*install_args(crontab_file, tmp_path / "logs", executable))
    assert code == 0


def test_without_a_crontab_program_the_user_crontab_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executable: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    for args in (
        ["install", "--executable", str(executable), "--server-timezone", "UTC"],
        ["show", "--executable", str(executable), "--server-timezone", "UTC"],
        ["remove"],
    ):
        code, _, err = cron(*args)
        assert code == 2
        assert err == (
            "error: no crontab program here (cron is not installed): install it "
            "(apt-get install cron, or dnf install cronie) or write a file with --file PATH\n"
        )


def test_the_user_crontab_goes_through_the_crontab_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executable: Path
) -> None:
    """A fake `crontab` keeping the table in a file: install and remove read and write it."""
    bin_dir, table = tmp_path / "fake-bin", tmp_path / "table"
    bin_dir.mkdir()
    fake = bin_dir / "crontab"
    fake.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = -l ]; then [ -f {table} ] || {{ echo "no crontab for me" >&2; exit 1; }}; '
        f"cat {table}; else cat > {table}; fi\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    args = ["install", "--log-dir", str(tmp_path / "logs"), "--executable", str(executable)]
    code, out, err = cron(*args, "--server-timezone", "UTC")
    assert code == 0, err
    assert out.startswith("installed the saathii-ops block into the user crontab")
    assert list(entries(table.read_text())) == [job.name for job in JOBS]
    code, _, _ = cron("remove")
    assert code == 0
    assert table.read_text() == ""


# --- show and --check ------------------------------------------------------------------


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


# --- crontab.example -------------------------------------------------------------------


def example_setup() -> cron_lines.CronSetup:
    """The typical setup crontab.example shows."""
    return setup_for(Path("/var/log/saathii"), config_file=Path("/etc/saathii/ops.toml"))


def test_crontab_example_is_what_install_writes_for_a_typical_setup() -> None:
    """Regenerate after a change of the jobs or the lines:
    UPDATE_CRONTAB_EXAMPLE=1 pytest tests/scheduling/test_cron.py -k crontab_example
    """
    block = cron_lines.render_block(example_setup(), Settings(), NOW)
    expected = cron_block.with_block("", block, "")
    example = REPO_ROOT / "crontab.example"
    if os.environ.get("UPDATE_CRONTAB_EXAMPLE"):
        example.write_text(expected)
    assert example.read_text() == expected


def test_the_cli_dry_run_writes_what_the_example_setup_renders(
    tmp_path: Path, executable: Path
) -> None:
    config = tmp_path / "ops.toml"
    config.write_text("")
    empty = tmp_path / "empty"
    empty.write_text("")
    result = Cli(None)(
        "--now",
        NOW.isoformat(),
        "--config",
        str(config),
        "cron",
        *install_args(empty, Path("/var/log/saathii"), executable, "--dry-run"),
    )
    assert result.exit_code == 0, result.stderr
    options = ("--config", str(config), "--executable", str(executable))
    options += ("--log-dir", "/var/log/saathii", "--server-timezone", "UTC")
    setup = setup_for(Path("/var/log/saathii"), executable, config_file=config, options=options)
    assert added_lines(result.stdout) == cron_lines.render_block(setup, Settings(), NOW)
    assert f"\n+# installed with: {' '.join(options)}\n" in result.stdout


# --- Kubernetes ------------------------------------------------------------------------


def test_kubernetes_cronjobs_one_per_job() -> None:
    code, out, err = cron(
        "install", "--format", "kubernetes", "--image", "ghcr.io/saathii/ops:1.2", "--secret", "ops"
    )
    assert code == 0, err
    manifests = list(yaml.safe_load_all(out))
    assert [m["metadata"]["name"] for m in manifests] == [f"saathii-ops-{job.name}" for job in JOBS]
    for manifest, job in zip(manifests, JOBS, strict=True):
        assert (manifest["apiVersion"], manifest["kind"]) == ("batch/v1", "CronJob")
        spec = manifest["spec"]
        assert spec["schedule"] == job.schedule
        assert spec["timeZone"] == ("Asia/Kolkata" if job.business_time else "Etc/UTC")
        assert spec["concurrencyPolicy"] == "Forbid"
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["image"] == "ghcr.io/saathii/ops:1.2"
        assert [*container["command"], *container["args"]] == ["saathii-ops", *job.command.split()]
        assert container["envFrom"] == [{"secretRef": {"name": "ops"}}]
        assert pod["restartPolicy"] == "Never"
    badges = manifests[[j.name for j in JOBS].index("badges-assign")]["spec"]
    assert (badges["schedule"], badges["timeZone"]) == ("1 0 * * *", "Asia/Kolkata")


def test_every_kubernetes_cronjob_has_deadlines_and_history_limits_from_its_schedule(
    tmp_path: Path,
) -> None:
    """A stuck or Pending pod must not block a Forbid CronJob for ever: each run is stopped
    before the next is due (its shortest interval), and a run that cannot start within half
    an interval is skipped."""
    config = tmp_path / "ops.toml"
    config.write_text('[schedules]\ncalls-cleanup = "0,5 * * * *"\n')  # shortest gap: 5 min
    result = Cli(None)(
        "--now",
        NOW.isoformat(),
        "--config",
        str(config),
        "cron",
        "install",
        "--format",
        "kubernetes",
        "--image",
        "ops:1",
        "--secret",
        "ops",
    )
    assert result.exit_code == 0, result.stderr
    manifests = {
        m["metadata"]["name"]: m["spec"]
        for m in yaml.safe_load_all(result.stdout)
        if m["kind"] == "CronJob"
    }
    assert len(manifests) == len(JOBS)
    expected = {  # job: (interval, activeDeadlineSeconds, startingDeadlineSeconds)
        "coins-deduct": (60, 54, 30),
        "calls-cleanup": (300, 270, 150),
        "presence-cleanup": (300, 270, 150),
        "badges-assign": (86400, 3600, 43200),
        "logs-prune": (86400, 3600, 43200),
    }
    for job in JOBS:
        spec = manifests[f"saathii-ops-{job.name}"]
        active = spec["jobTemplate"]["spec"]["activeDeadlineSeconds"]
        starting = spec["startingDeadlineSeconds"]
        assert isinstance(active, int) and isinstance(starting, int)
        assert active > 0 and starting >= 10
        assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 5)
        if job.name in expected:
            interval, *deadlines = expected[job.name]
            assert [active, starting] == deadlines
            assert active < interval


def test_kubernetes_needs_an_image_and_configuration_by_reference() -> None:
    code, _, err = cron("install", "--format", "kubernetes", "--secret", "ops")
    assert code == 2 and "needs --image IMAGE" in err
    code, _, err = cron("install", "--format", "kubernetes", "--image", "ops:1")
    assert code == 2 and "--secret NAME" in err
    code, _, err = cron(
        "install", "--format", "kubernetes", "--image", "i", "--secret", "s", "--file", "/tmp/x"
    )
    assert code == 2 and "takes none of" in err
    code, _, err = cron(
        "install", "--format", "kubernetes", "--image", "i", "--config-map", "ops-config",
        "--secret", "ops",
    )  # fmt: skip
    assert (code, err) == (
        2,
        "error: --config-map names the ConfigMap made from --config: give --config PATH\n",
    )
    code, out, _ = cron(
        "install",
        "--format",
        "kubernetes",
        "--image",
        "i",
        "--secret",
        "ops",
        "--server-timezone",
        "Asia/Kolkata",
    )
    first = next(yaml.safe_load_all(out))
    assert first["spec"]["timeZone"] == "Asia/Kolkata"
    assert first["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "ops"}},
    ]


def test_settings_given_by_this_shells_environment_are_named(
    tmp_path: Path, executable: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAATHII_TIMEZONE", "Asia/Kolkata")
    monkeypatch.setenv("SAATHII_COINS_PER_MINUTE__VIDEO", "50")
    monkeypatch.setenv("SAATHII_UNRELATED_TOOL", "x")
    args = install_args(tmp_path / "crontab", tmp_path / "logs", executable)
    code, _, err = cron(*args)
    assert code == 0
    assert err == (
        "warning: cron will not see SAATHII_COINS_PER_MINUTE__VIDEO, SAATHII_TIMEZONE of this "
        "shell: put them in the config file or an --env-file\n"
    )
    env_file = tmp_path / "ops.env"
    env_file.write_text("SAATHII_TIMEZONE=Asia/Kolkata\n")
    code, _, err = cron(*args, "--env-file", str(env_file))
    assert (code, err) == (0, "")
