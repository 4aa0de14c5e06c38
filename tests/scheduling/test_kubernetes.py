"""`cron install --format kubernetes` (SPEC §10): the manifests carry the whole
configuration (a ConfigMap made from the config file, mounted and passed with --config to
every CronJob), never a password, with resources, a non-root securityContext and
ttlSecondsAfterFinished; `kubernetes-validate --strict` accepts them (offline: it ships
its schemas)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from saathii_ops.runtime.registry import JOBS
from saathii_ops.settings import load_settings
from tests.conftest import Cli
from tests.support.cron import NOW, cron

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


def test_kubernetes_needs_an_image_and_configuration_by_reference(tmp_path: Path) -> None:
    code, _, err = cron("install", "--format", "kubernetes", "--secret", "ops")
    assert code == 2 and "needs --image IMAGE" in err
    code, _, err = cron("install", "--format", "kubernetes", "--image", "ops:1")
    assert code == 2 and "--secret NAME" in err
    code, _, err = cron(
        "install", "--format", "kubernetes", "--image", "i", "--secret", "s",
        "--file", str(tmp_path / "crontab"),
    )  # fmt: skip
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
