"""The shipped alert rules (SPEC §10): deploy/prometheus/saathii-ops.rules.yml
passes `promtool check rules`, each alert has a `promtool test rules` case that fires it,
and every saathii-ops metric the rules use is one `status --format prometheus` emits."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.runtime.registry import JOBS
from tests.conftest import REPO_ROOT, Cli
from tests.factories import T0, add_run

RULES = REPO_ROOT / "deploy" / "prometheus" / "saathii-ops.rules.yml"
RULE_TESTS = REPO_ROOT / "deploy" / "prometheus" / "saathii-ops.rules.test.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus; CI does)"
)
# node_exporter's own series, which the stale-file alert reads
NODE_EXPORTER_METRICS = {"node_textfile_mtime_seconds"}


def alerts() -> dict[str, str]:
    """alert name -> expression"""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, check=False)


@needs_promtool
def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in checked.stdout
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    assert {check["alertname"] for check in checks} == set(alerts())
    fired = {check["alertname"] for check in checks if check["exp_alerts"]}
    assert fired == set(alerts())
    quiet = {check["alertname"] for check in checks if not check["exp_alerts"]}
    assert quiet == set(alerts())  # and each is shown quiet where it should be


def test_the_rules_use_the_metrics_status_really_emits(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        for job in JOBS:  # a run of each job: every family of the jobs is there
            add_run(s, job.name, "ok", T0 - timedelta(minutes=1), counts={"calls_charged": 1})
        s.commit()
    result = cli("--now", T0.isoformat(), "status", "--format", "prometheus")
    emitted = set(re.findall(r"^# TYPE (\w+) ", result.stdout, re.M))
    used = {name for expr in alerts().values() for name in re.findall(r"\b[a-z_]+_\w+", expr)}
    used = {name for name in used if name.startswith(("saathii_ops_", "node_"))}
    assert used - NODE_EXPORTER_METRICS <= emitted, used - emitted
    assert "saathii_ops_job_last_exit_code" in used and "saathii_ops_up" in used


def test_the_rules_file_is_where_the_docs_say() -> None:
    operations = (REPO_ROOT / "docs" / "operations.md").read_text()
    assert str(RULES.relative_to(REPO_ROOT)) in operations
    assert Path(RULE_TESTS).exists()


def test_an_audit_that_found_something_is_what_the_audit_alert_reads(
    cli: Cli, engine: Engine
) -> None:
    """SaathiiOpsAuditFindings reads saathii_ops_job_last_exit_code{job="wallets-audit"}:
    1 after an audit that found a wallet off its ledger (its run is recorded 'ok', with
    the rows it found), 0 after a clean one."""
    import sqlalchemy as sa

    from saathii_ops.db.tables import user_wallets
    from tests.factories import add_user

    def audit_exit_code() -> str:
        result = cli("--now", T0.isoformat(), "status", "--format", "prometheus")
        (line,) = [
            line
            for line in result.stdout.splitlines()
            if line.startswith('saathii_ops_job_last_exit_code{job="wallets-audit"}')
        ]
        return line.rsplit(" ", 1)[1]

    with transaction(engine) as s:
        user = add_user(s, balance=100)
        s.commit()
    assert cli("--now", T0.isoformat(), "wallets", "audit").exit_code == 0
    assert audit_exit_code() == "0.0"
    with transaction(engine) as s:  # a debit erased: the balance is off its ledger
        s.execute(
            sa.update(user_wallets).where(user_wallets.c.user_id == user).values(balance_coins=90)
        )
        s.commit()
    assert cli("--now", T0.isoformat(), "wallets", "audit").exit_code == 1
    assert audit_exit_code() == "1.0"
