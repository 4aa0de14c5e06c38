"""An installed schedule's target (SPEC §10-11): the config file and the
database its recorded options name. `cron install` does not replace a block of another
target without --force, and `status` counts a job as scheduled only in a block of its own
target."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from saathii_ops.runtime.registry import JOBS
from saathii_ops.scheduling.schedule_target import (
    ScheduleTarget,
    comparable_url,
    env_file_database_url,
    recorded_target,
    running_target,
)
from tests.conftest import Cli

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


def config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text("call_stale_minutes = 12\n")
    return path


def install(
    crontab: Path, executable: Path, *global_options: str, extra: tuple[str, ...] = ()
) -> tuple[int, str, str]:
    result = Cli(None)(
        *global_options,
        "--now",
        NOW.isoformat(),
        "cron",
        "install",
        "--file",
        str(crontab),
        "--log-dir",
        str(crontab.parent / "logs"),
        "--executable",
        str(executable),
        "--server-timezone",
        "UTC",
        *extra,
    )
    return result.exit_code, result.stdout, result.stderr


def test_install_refuses_to_replace_the_block_of_another_config_unless_forced(
    tmp_path: Path, executable: Path
) -> None:
    production = config(tmp_path, "ops.toml")
    other = config(tmp_path, "other.toml")
    crontab = tmp_path / "crontab"
    crontab.write_text("MAILTO=ops@example.com\n")
    assert install(crontab, executable, "--config", str(production))[0] == 0
    installed = crontab.read_bytes()

    for options in ((), ("--config", str(other))):
        for dry_run in ((), ("--dry-run",)):
            code, out, err = install(crontab, executable, *options, extra=dry_run)
            wanted = f"--config {other}" if options else "no --config"
            assert (code, out) == (2, "")
            assert err == (
                f"error: {crontab} holds the saathii-ops block of another target (--config "
                f"{production}, database the one its configuration names); this install is "
                f"for {wanted}, database the one its configuration names: give --force to "
                "replace it\n"
            )
            assert crontab.read_bytes() == installed

    # the same target replaces it as before; --force replaces another
    assert install(crontab, executable, "--config", str(production))[0] == 0
    code, _, err = install(crontab, executable, extra=("--force",))
    assert (code, err) == (0, "")
    assert f"--config {production}" not in crontab.read_text()
    assert crontab.read_text().endswith("MAILTO=ops@example.com\n")


def test_install_refuses_the_block_of_another_database(tmp_path: Path, executable: Path) -> None:
    crontab = tmp_path / "crontab"
    first = f"sqlite:///{tmp_path / 'first.db'}"
    second = f"sqlite:///{tmp_path / 'second.db'}"
    assert install(crontab, executable, "--database-url", first)[0] == 0
    code, _, err = install(crontab, executable, "--database-url", second)
    assert code == 2
    assert f"(no --config, database {first})" in err
    assert f"this install is for no --config, database {second}:" in err
    assert install(crontab, executable, "--database-url", first)[0] == 0


def test_a_block_whose_env_file_names_the_database_targets_that_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "ops.env"
    env_file.write_text(
        "# the jobs' database\nexport SAATHII_DATABASE_URL='postgresql://ops:pw@db/saathii'\n"
    )
    assert env_file_database_url(env_file) == "postgresql://ops:pw@db/saathii"
    target = recorded_target({"--env-file": str(env_file)})
    assert target == ScheduleTarget(None, "postgresql+psycopg2://ops:***@db/saathii")
    # status run with that environment (the password is no part of the target)
    assert running_target(None, "postgresql://ops:other@db/saathii", "SAATHII_DATABASE_URL") == (
        target
    )
    # a URL from the config file, or the embedded default, is the configuration's
    assert running_target(None, "sqlite:///x.db", "embedded default") == ScheduleTarget(None, None)


def scheduled(cli: Cli, crontab: Path, *options: str) -> dict[str, bool | None]:
    result = cli(
        *options, "--now", NOW.isoformat(), "status", "--json", "--crontab-file", str(crontab)
    )
    return {job["job"]: job["scheduled"] for job in json.loads(result.stdout)["jobs"]}


def prometheus_scheduled(cli: Cli, crontab: Path, *options: str) -> set[str]:
    result = cli(
        *options, "--now", NOW.isoformat(), "status", "--format", "prometheus",
        "--crontab-file", str(crontab),
    )  # fmt: skip
    return {
        line.rsplit(" ", 1)[1]
        for line in result.stdout.splitlines()
        if line.startswith("saathii_ops_job_scheduled{")
    }


def test_status_counts_only_a_block_of_its_own_config_and_database(
    cli: Cli, db_url: str, tmp_path: Path, executable: Path
) -> None:
    production = config(tmp_path, "ops.toml")
    other = config(tmp_path, "other.toml")
    crontab = tmp_path / "crontab"
    everything = dict.fromkeys((job.name for job in JOBS), True)
    nothing = dict.fromkeys((job.name for job in JOBS), False)

    # a block for this database and ops.toml
    assert (
        install(crontab, executable, "--database-url", db_url, "--config", str(production))[0] == 0
    )
    assert scheduled(cli, crontab, "--config", str(production)) == everything
    assert prometheus_scheduled(cli, crontab, "--config", str(production)) == {"1.0"}
    # looked at with another config file, or none: not this one's schedule
    assert scheduled(cli, crontab, "--config", str(other)) == nothing
    assert scheduled(cli, crontab) == nothing
    assert prometheus_scheduled(cli, crontab) == {"0.0"}
    # and says whose the block is
    result = cli("--now", NOW.isoformat(), "status", "--json", "--crontab-file", str(crontab))
    assert json.loads(result.stdout)["crontab"] == (
        f"{crontab} (its block runs another target: --config {production}, database "
        f"{comparable_url(db_url)})"
    )
    result = cli("--config", str(production), "--json", "status", "--crontab-file", str(crontab))
    assert json.loads(result.stdout)["crontab"] == str(crontab)

    # a block for another database with the same config file
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    code, _, err = install(
        crontab, executable, "--database-url", elsewhere, "--config", str(production),
        extra=("--force",),
    )  # fmt: skip
    assert code == 0, err
    assert scheduled(cli, crontab, "--config", str(production)) == nothing
