"""The metrics line (SPEC §10): `cron install --metrics-file PATH` schedules
`status --format prometheus --metrics-file PATH` every minute, which replaces the file at
once for node_exporter's textfile collector, also when the database is down."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from crontab import CronTab
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Cli
from tests.support.installed import SAATHII_OPS

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)


def samples(path: Path) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(path.read_text())
        for sample in family.samples
        if not sample.labels
    }


def test_the_metrics_line_writes_the_textfile_for_node_exporter(
    db_url: str, tmp_path: Path
) -> None:
    textfile_dir = tmp_path / "textfile"
    textfile_dir.mkdir()
    metrics = textfile_dir / "saathii-ops.prom"
    crontab = tmp_path / "crontab"
    result = Cli(db_url)(
        "--now", NOW.isoformat(), "cron", "install", "--file", str(crontab),
        "--log-dir", str(tmp_path / "logs"), "--executable", SAATHII_OPS,
        "--server-timezone", "UTC", "--metrics-file", str(metrics),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (line,) = [
        entry for entry in CronTab(tab=crontab.read_text()) if entry.comment == "status-metrics"
    ]
    assert line.slices.clean_render() == "* * * * *"
    command = line.command.replace("\\%", "%")
    assert f" status --format prometheus --metrics-file {metrics} >> " in command
    assert "--metrics-file" in crontab.read_text().splitlines()[1]  # recorded with the block

    # what cron runs: the file appears whole, and is replaced (a new inode), not rewritten
    subprocess.run(["/bin/sh", "-c", command], env={}, check=False, timeout=120)
    first = metrics.stat().st_ino
    assert samples(metrics)["saathii_ops_up"] == 1.0
    subprocess.run(["/bin/sh", "-c", command], env={}, check=False, timeout=120)
    assert metrics.stat().st_ino != first
    assert sorted(p.name for p in textfile_dir.iterdir()) == ["saathii-ops.prom"]
    log = (tmp_path / "logs" / "status-metrics.log").read_text()
    assert "saathii_ops" not in log  # the metrics go to the file, not the log


def test_the_metrics_file_says_down_when_the_database_is(tmp_path: Path) -> None:
    metrics = tmp_path / "saathii-ops.prom"
    down = Cli("postgresql://ops@127.0.0.1:1/saathii")
    result = down("status", "--format", "prometheus", "--metrics-file", str(metrics))
    assert result.exit_code == 3
    assert result.stdout == ""
    assert samples(metrics)["saathii_ops_up"] == 0.0


def test_the_metrics_file_needs_the_prometheus_format(tmp_path: Path) -> None:
    result = Cli(None)("status", "--metrics-file", str(tmp_path / "x.prom"))
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --metrics-file writes the Prometheus text: add --format prometheus\n",
    )
    missing = tmp_path / "no-such-dir" / "x.prom"
    result = Cli(f"sqlite:///{tmp_path / 'x.db'}")(
        "status", "--format", "prometheus", "--metrics-file", str(missing)
    )
    assert result.exit_code == 2
    assert result.stderr.endswith(
        f"error: cannot write the metrics file {missing}: No such file or directory\n"
    )
