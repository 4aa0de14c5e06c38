"""docs/operations.md's commands run as an operator types them, in the guide's order, as
real processes: on a PostgreSQL database made from the app's DDL, with the guide's own
example config (its database_url pointed at that database, its log_dir at a temporary
directory). What cannot run on a test machine is named with the reason."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from saathii_ops.db.engine import parse_url
from tests.support.crontab import fake_crontab
from tests.support.docs import OPERATIONS, settings_example
from tests.support.installed import BIN_DIR
from tests.support.schema import APP_SCHEMA_SQL

# lines of the guide that change this machine or need what a test machine has not got;
# the plain install they describe is what .ci/run proves first
CANNOT_RUN = {
    "useradd": "creates a system user",
    "python3": "installs into /opt (.ci/run's plain install proves the same steps)",
    "ln": "writes /usr/local/bin",
    "install": "writes /var/log and /etc",
    "systemctl": "no systemd is running here (tests/scheduling/test_systemd.py verifies the units)",
    "kubectl": "no cluster (tests/scheduling/test_kubernetes.py validates the manifests)",
}


def guide_lines() -> list[str]:
    """Every command line of the guide's shell blocks, comments dropped."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", OPERATIONS.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def runnable(line: str) -> bool:
    program = line.split()[0]
    if program != "saathii-ops":
        assert program in CANNOT_RUN, f"docs/operations.md: say why {line!r} cannot run here"
        return False
    # installing systemd units writes /etc/systemd/system: its --dry-run twin runs instead
    return not ("--format systemd" in line and "--dry-run" not in line)


@pytest.mark.postgresql_only
def test_the_operators_guide_runs_as_written(
    empty_db_url: str, backend: str, tmp_path: Path
) -> None:
    if backend != "postgresql":
        pytest.skip("the app's DDL is PostgreSQL")
    engine = sa.create_engine(parse_url(empty_db_url))
    with engine.begin() as conn:
        conn.exec_driver_sql(APP_SCHEMA_SQL.read_text())
    engine.dispose()

    config = tmp_path / "ops.toml"
    example = settings_example().replace('"/var/log/saathii"', f'"{tmp_path / "logs"}"')
    config.write_text(f'database_url = "{empty_db_url}"\n{example}')
    config.chmod(0o600)
    env = {
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "PATH": f"{BIN_DIR}:{fake_crontab(tmp_path)}:/usr/bin:/bin",
    }
    places = {
        "/etc/saathii/ops.toml": str(config),
        "--config ops.toml": f"--config {config}",
        "/var/lib/node_exporter/textfile/": f"{tmp_path}/",
    }
    ran = []
    for line in filter(runnable, guide_lines()):
        for documented, here in places.items():
            line = line.replace(documented, here)
        command, _, redirect = line.partition(" > ")
        result = subprocess.run(
            shlex.split(command), env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{line}\n{result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
        if redirect:
            assert result.stdout.strip(), f"{line}: nothing to redirect"
        ran.append(command.split(" ", 3)[-1])
    assert len(ran) >= 10, ran
