"""`logs prune` (SPEC §9, §10): rotates and deletes only this project's job logs, and prunes
the job-runs audit table (failures kept longer than successes)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import ops_job_runs
from saathii_ops.jobs import log_prune
from saathii_ops.jobs.log_prune import PruneOptions
from saathii_ops.settings import Settings
from tests.conftest import Cli
from tests.factories import T0, add_run, run_context

NOW = T0 + timedelta(hours=19)  # 2026-11-30 01:00 UTC
STAMP = "20261130T010000Z"


def _write(path: Path, text: str, modified: datetime) -> None:
    path.write_text(text)
    os.utime(path, (modified.timestamp(), modified.timestamp()))


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """Logs of registered jobs, live and rotated, old and new, and files that are not ours."""
    d = tmp_path / "logs"
    d.mkdir()

    def days(n: float) -> datetime:
        return NOW - timedelta(days=n)

    _write(d / "presence-cleanup.log", "today\n", days(0.01))
    _write(d / "logs-prune.log", "", days(30))  # empty: nothing to keep, left alone
    _write(d / "presence-cleanup.log.20261121T010000Z", "old\n", days(9))
    _write(
        d / "presence-cleanup.log.20261123T005959Z",
        "7 days and 1 s\n",
        days(7) - timedelta(seconds=1),
    )
    _write(d / "presence-cleanup.log.20261123T010000Z", "exactly 7 days\n", days(7))
    _write(d / "logs-prune.log.20261101T010000Z", "old\n", days(29))
    # not ours, however old
    for name in (
        "other.log",
        "presence-cleanup.log.bak",
        "presence-cleanup.log.20261101T010000Z.gz",
        "presence-cleanup.lock",
        "unknown-job.log.20261101T010000Z",
        "presence-cleanup.log.2026-11-01",
    ):
        _write(d / name, "keep\n", days(60))
    (d / "logs-prune.log.20261102T010000Z").mkdir()
    os.symlink(d / "other.log", d / "presence-cleanup.log.20261103T010000Z")
    return d


@pytest.fixture
def runs(engine: Engine) -> dict[str, int]:
    """Audit rows around the 7-day (ok, skipped) and 30-day (failed) limits."""
    with transaction(engine) as s:
        ids = {
            "ok_8d": add_run(s, "presence-cleanup", "ok", NOW - timedelta(days=8)),
            "ok_7d": add_run(s, "presence-cleanup", "ok", NOW - timedelta(days=7)),
            "ok_6d": add_run(s, "presence-cleanup", "ok", NOW - timedelta(days=6)),
            "skipped_8d": add_run(
                s, "logs-prune", "skipped", NOW - timedelta(days=8), reason="paused"
            ),
            "failed_8d": add_run(s, "presence-cleanup", "failed", NOW - timedelta(days=8)),
            "failed_31d": add_run(s, "presence-cleanup", "failed", NOW - timedelta(days=31)),
            "other_job_ok_9d": add_run(s, "retired-job", "ok", NOW - timedelta(days=9)),
        }
        s.commit()
    return ids


def _run_ids(engine: Engine) -> list[int]:
    with transaction(engine) as s:
        return sorted(s.scalars(sa.select(ops_job_runs.c.run_id)))


def _files(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


EXPECTED_DELETED = [
    "logs-prune.log.20261101T010000Z",
    "presence-cleanup.log.20261121T010000Z",
    "presence-cleanup.log.20261123T005959Z",
]


def test_service_plan_and_apply_agree_and_touch_only_our_old_logs(
    engine: Engine, log_dir: Path, runs: dict[str, int]
) -> None:
    settings = Settings(log_dir=log_dir)
    files_before = _files(log_dir)
    with transaction(engine, read_only=True) as s:
        plan = log_prune.prune(run_context(s, NOW, settings, apply=False))
    assert _files(log_dir) == files_before
    with transaction(engine) as s:
        applied = log_prune.prune(run_context(s, NOW, settings, apply=True))
        s.commit()

    assert plan == applied
    assert applied.rotated == [f"presence-cleanup.log -> presence-cleanup.log.{STAMP}"]
    assert applied.deleted == EXPECTED_DELETED
    assert (applied.logs_rotated, applied.logs_deleted) == (1, 3)
    assert applied.logs_before == NOW - timedelta(days=7)
    assert applied.failed_runs_before == NOW - timedelta(days=30)

    expected_files = sorted(
        (set(files_before) - set(EXPECTED_DELETED) - {"presence-cleanup.log"})
        | {f"presence-cleanup.log.{STAMP}"}
    )
    assert _files(log_dir) == expected_files
    assert (log_dir / f"presence-cleanup.log.{STAMP}").read_text() == "today\n"

    # ok and skipped runs older than 7 days, failed ones older than 30; any job's
    assert (applied.runs_deleted, applied.failed_runs_deleted) == (3, 1)
    assert _run_ids(engine) == sorted([runs["ok_7d"], runs["ok_6d"], runs["failed_8d"]])


def test_a_second_prune_at_the_same_instant_changes_nothing(
    engine: Engine, log_dir: Path, runs: dict[str, int]
) -> None:
    settings = Settings(log_dir=log_dir)
    for _ in range(2):
        with transaction(engine) as s:
            report = log_prune.prune(run_context(s, NOW, settings, apply=True))
            s.commit()
    assert (report.logs_rotated, report.logs_deleted, report.runs_deleted) == (0, 0, 0)
    # a new live log with the rotated name already taken stays where it is
    (log_dir / "presence-cleanup.log").write_text("more\n")
    with transaction(engine) as s:
        assert log_prune.prune(run_context(s, NOW, settings, apply=True)).rotated == []


def test_days_shortens_the_retention_but_never_below_it_for_failures(
    engine: Engine, log_dir: Path, runs: dict[str, int]
) -> None:
    with transaction(engine) as s:
        report = log_prune.prune(
            run_context(
                s, NOW, Settings(log_dir=log_dir), apply=True, options=PruneOptions(days=40)
            )
        )
        s.commit()
    # 40 days keeps everything, failures included (their 30 days become 40)
    assert (report.runs_deleted, report.failed_runs_deleted, report.logs_deleted) == (0, 0, 0)
    assert report.failed_runs_before == NOW - timedelta(days=40)

    with transaction(engine) as s:
        report = log_prune.prune(
            run_context(s, NOW, Settings(log_dir=log_dir), apply=True, options=PruneOptions(days=2))
        )
        s.commit()
    assert (report.runs_deleted, report.failed_runs_deleted) == (5, 1)
    assert _run_ids(engine) == [runs["failed_8d"]]
    assert report.logs_deleted == 4  # the three above and the one of exactly 7 days


def test_a_missing_log_directory_prunes_only_the_audit_table(
    engine: Engine, tmp_path: Path, runs: dict[str, int]
) -> None:
    with transaction(engine) as s:
        report = log_prune.prune(
            run_context(s, NOW, Settings(log_dir=tmp_path / "none"), apply=True)
        )
    assert (report.logs_rotated, report.logs_deleted, report.runs_deleted) == (0, 0, 3)


def test_cli_dry_run_reports_the_same_and_changes_nothing(
    cli: Cli, engine: Engine, log_dir: Path, runs: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAATHII_LOG_DIR", str(log_dir))
    files_before, runs_before = _files(log_dir), _run_ids(engine)

    dry = cli("--now", NOW.isoformat(), "--json", "logs", "prune", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert (_files(log_dir), _run_ids(engine)) == (files_before, runs_before)

    real = cli("--now", NOW.isoformat(), "--json", "logs", "prune")
    assert real.exit_code == 0, real.stderr
    dry_doc, real_doc = json.loads(dry.stdout), json.loads(real.stdout)
    assert (dry_doc["outcome"], real_doc["outcome"]) == ("dry-run", "ok")
    assert dry_doc["report"] == real_doc["report"]
    assert real_doc["report"]["deleted"] == EXPECTED_DELETED
    assert _files(log_dir) != files_before

    with transaction(engine) as s:
        recorded = s.execute(
            sa.select(ops_job_runs.c.counts).where(
                ops_job_runs.c.job == "logs-prune", ops_job_runs.c.outcome == "ok"
            )
        ).scalar_one()
    assert recorded == {
        "logs_rotated": 1,
        "logs_deleted": 3,
        "runs_deleted": 3,
        "failed_runs_deleted": 1,
    }


def test_cli_days_option(
    cli: Cli, log_dir: Path, runs: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAATHII_LOG_DIR", str(log_dir))
    result = cli("--now", NOW.isoformat(), "--json", "logs", "prune", "--days", "2", "--dry-run")
    report = json.loads(result.stdout)["report"]
    assert (report["runs_deleted"], report["logs_deleted"]) == (5, 4)
    assert report["logs_before"] == (NOW - timedelta(days=2)).isoformat()
    assert cli("logs", "prune", "--days", "0").exit_code == 2
