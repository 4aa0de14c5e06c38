"""`cron install --format kubernetes` (SPEC §10): the manifests carry the whole
configuration (a ConfigMap made from the config file, mounted and passed with --config to
every CronJob), never a password, with resources, a non-root securityContext and
ttlSecondsAfterFinished; `kubernetes-validate --strict` accepts them (offline: it ships
its schemas)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from saathii_ops.runtime.registry import JOBS
from saathii_ops.settings import load_settings
from tests.conftest import Cli

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
PRODUCTION = """\
# production: billing at 12 coins a minute for audio
call_stale_minutes = 3
database_url = "postgresql://ops@db.internal/saathii"

[coins_per_minute]
audio = 12

[schedules]
calls-cleanup = "*/5 * * * *"
"""
VALIDATOR = Path(sys.executable).with_name("kubernetes-validate")


def manifests(config: Path, *options: str) -> tuple[int, list[dict[str, Any]], str]:
    result = Cli(None)(
        "--config", str(config), "--now", NOW.isoformat(),
        "cron", "install", "--format", "kubernetes", "--image", "ghcr.io/saathii/ops:1.2",
        *options,
    )  # fmt: skip
    documents = list(yaml.safe_load_all(result.stdout)) if result.exit_code == 0 else []
    return result.exit_code, documents, result.stdout + result.stderr


def pod(cronjob: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def test_the_config_file_becomes_a_configmap_every_cronjob_runs_with(tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(PRODUCTION)
    code, docs, out = manifests(config, "--secret", "saathii-db")
    assert code == 0, out
    config_map, *cronjobs = docs
    assert (config_map["kind"], config_map["metadata"]["name"]) == (
        "ConfigMap",
        "saathii-ops-config",
    )
    # every setting of the file, as it is: the pods load the same settings
    assert config_map["data"] == {"ops.toml": PRODUCTION}
    in_pod = tmp_path / "in-pod.toml"
    in_pod.write_text(config_map["data"]["ops.toml"])
    assert load_settings(in_pod) == load_settings(config)
    assert load_settings(in_pod).coins_per_minute.audio == 12
    assert [c["metadata"]["name"] for c in cronjobs] == [f"saathii-ops-{j.name}" for j in JOBS]
    for cronjob, job in zip(cronjobs, JOBS, strict=True):
        spec = pod(cronjob)
        (container,) = spec["containers"]
        assert container["args"] == ["--config", "/etc/saathii/ops.toml", *job.command.split()]
        assert {"name": "config", "mountPath": "/etc/saathii", "readOnly": True} in container[
            "volumeMounts"
        ]
        assert {"name": "config", "configMap": {"name": "saathii-ops-config"}} in spec["volumes"]
        assert container["envFrom"] == [{"secretRef": {"name": "saathii-db"}}]
    calls_cleanup = cronjobs[[j.name for j in JOBS].index("calls-cleanup")]
    assert calls_cleanup["spec"]["schedule"] == "*/5 * * * *"

    # a name of one's own for the ConfigMap
    code, docs, _ = manifests(config, "--secret", "s", "--config-map", "ops-prod")
    assert docs[0]["metadata"]["name"] == "ops-prod"
    assert pod(docs[1])["volumes"][-1] == {"name": "config", "configMap": {"name": "ops-prod"}}


def test_every_pod_is_bounded_non_root_and_cleaned_up(tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(PRODUCTION)
    _, docs, _ = manifests(config, "--secret", "saathii-db")
    for cronjob in docs[1:]:
        job_spec = cronjob["spec"]["jobTemplate"]["spec"]
        assert job_spec["ttlSecondsAfterFinished"] == 3 * 24 * 3600
        spec = pod(cronjob)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        (container,) = spec["containers"]
        assert container["resources"] == {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "512Mi"},
        }
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }


@pytest.mark.parametrize(
    ("setting", "variable"),
    [
        ('database_url = "postgresql://ops:s3cret@db/saathii"', "SAATHII_DATABASE_URL"),
        ('database_url = "postgresql://db/saathii?password=s3cret"', "SAATHII_DATABASE_URL"),
        ('redis_url = "redis://:s3cret@cache:6379/0"', "SAATHII_REDIS_URL"),
    ],
)
def test_a_password_in_the_config_file_is_refused_naming_where_it_belongs(
    tmp_path: Path, setting: str, variable: str
) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(f"{setting}\n")
    config.chmod(0o600)
    code, _, out = manifests(config, "--secret", "saathii-db")
    key = setting.split(" ")[0]
    assert (code, out) == (
        2,
        f"error: config file {config} holds a password in {key}, which would go into the "
        f"ConfigMap: put it in the Secret saathii-db as {variable} and remove it from the file\n",
    )
    assert "s3cret" not in out


@pytest.mark.skipif(not VALIDATOR.exists(), reason="kubernetes-validate is not installed (dev)")
def test_the_manifests_pass_kubernetes_validate_strict(tmp_path: Path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(PRODUCTION)
    code, _, out = manifests(config, "--secret", "saathii-db")
    assert code == 0
    assert "password" not in out and ":s3" not in out
    written = tmp_path / "saathii-ops.yaml"
    written.write_text(out)
    done = subprocess.run(
        [str(VALIDATOR), "--strict", str(written)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    passed = [line for line in done.stdout.splitlines() if " passed for resource " in line]
    assert len(passed) == 1 + len(JOBS), done.stdout
