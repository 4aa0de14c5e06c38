"""`cron install --format …` refuses the options of the other formats (SPEC §10): one
line naming them, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli

KUBERNETES = (
    "error: --format kubernetes prints manifests: it takes none of --dry-run, --check, "
    "--system, --file, --user, --log-dir, --env-file, --executable, --directory, "
    "--metrics-file, --force\n"
)
SYSTEMD = (
    "error: --format systemd writes units (their output goes to journald, each timer names "
    "its timezone): it takes none of --check, --system, --file, --log-dir, --server-timezone\n"
)
KUBERNETES_ONLY = "error: --image, --secret and --config-map go with --format kubernetes\n"
SYSTEMD_ONLY = "error: --directory goes with --format systemd\n"


@pytest.mark.parametrize(
    ("options", "line"),
    [
        (["--format", "kubernetes", "--image", "i", "--secret", "s", "--dry-run"], KUBERNETES),
        (["--format", "kubernetes", "--image", "i", "--secret", "s", "--force"], KUBERNETES),
        (["--format", "kubernetes", "--user", "ops"], KUBERNETES),
        (["--format", "kubernetes", "--directory", "{tmp}/units"], KUBERNETES),
        (["--format", "kubernetes", "--metrics-file", "{tmp}/ops.prom"], KUBERNETES),
        (["--format", "systemd", "--check"], SYSTEMD),
        (["--format", "systemd", "--system"], SYSTEMD),
        (["--format", "systemd", "--log-dir", "{tmp}/logs"], SYSTEMD),
        (["--format", "systemd", "--server-timezone", "UTC"], SYSTEMD),
        (["--format", "systemd", "--image", "i", "--check"], KUBERNETES_ONLY),  # named first
        (["--secret", "s"], KUBERNETES_ONLY),
        (["--config-map", "ops-config"], KUBERNETES_ONLY),
        (["--directory", "{tmp}/units"], SYSTEMD_ONLY),
    ],
)
def test_each_format_refuses_the_others_options(
    tmp_path: Path, options: list[str], line: str
) -> None:
    args = [option.format(tmp=tmp_path) for option in options]
    if "--format" not in args:  # crontab: a file of the test's, should the refusal not come
        args += ["--file", str(tmp_path / "crontab")]
    result = Cli(None)("cron", "install", *args)
    assert (result.exit_code, result.stderr, result.stdout) == (2, line, "")
    assert sorted(path.name for path in tmp_path.iterdir()) == []
