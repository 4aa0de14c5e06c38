"""`cron install | remove` in a crontab (SPEC §10): the marked block installed, replaced and
removed with every other byte kept, its lines, configuration by reference (never a
password), the log directory, the lock and the crontab program.

These tests write crontab files with --file only: never the crontab of the machine.
None needs a database.
"""

from __future__ import annotations

import fcntl
import getpass
import os
import shutil
import stat
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from crontab import CronTab

from saathii_ops.runtime.registry import JOBS
from saathii_ops.scheduling import block as cron_block
from saathii_ops.scheduling import expressions, targets
from saathii_ops.scheduling import lines as cron_lines
from saathii_ops.settings import Settings
from tests.conftest import Cli
from tests.support.cron import (
    FOREIGN,
    LATER,
    NOW,
    STAMP,
    added_lines,
    block_of,
    cron,
    cron_stdout_bytes,
    entries,
    install_args,
    setup_for,
)

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
