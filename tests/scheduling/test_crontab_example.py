"""deploy's crontab.example is what `cron install` writes for a typical setup."""

from __future__ import annotations

import os
from pathlib import Path

from saathii_ops.scheduling import block as cron_block
from saathii_ops.scheduling import lines as cron_lines
from saathii_ops.settings import Settings
from tests.conftest import REPO_ROOT, Cli
from tests.support.cron import (
    NOW,
    added_lines,
    install_args,
    setup_for,
)


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
