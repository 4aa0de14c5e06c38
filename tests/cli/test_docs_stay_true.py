"""The documents stay true: docs/cli.md is generated from `--help` (Typer's docs
generator) and must not drift; docs/operations.md's configuration example loads and names
every setting, with the defaults it claims."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from saathii_ops.settings import Settings, load_settings
from tests.conftest import Cli
from tests.support.docs import OPERATIONS, settings_example
from tests.support.installed import SAATHII_OPS

CLI_DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
GENERATE = [
    sys.executable,
    "-m",
    "typer",
    "saathii_ops.cli.app",
    "utils",
    "docs",
    "--name",
    "saathii-ops",
]


def test_cli_docs_are_what_the_help_says_now() -> None:
    generated = subprocess.run(GENERATE, capture_output=True, text=True, check=True).stdout
    assert CLI_DOCS.read_text(encoding="utf-8") == generated, (
        "docs/cli.md is stale: python -m typer saathii_ops.cli.app utils docs "
        "--name saathii-ops > docs/cli.md"
    )


# settings whose example is a value of one's own, not the default (which is none)
NO_DEFAULT_SHOWN = {
    "database_url",
    "server_timezone",
    "schedules",
    "ping_url",
    "ping_urls",
    "redis_url",
}


def uncommented(example: str) -> str:
    """The example with its commented settings (`# key = …`, your own servers) in."""
    return re.sub(r"^# (?=[a-z_]+ = )", "", example, flags=re.M)


def setting_names(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every setting, a nested section's as section.key."""
    names = set()
    for name, field in model.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            names |= setting_names(section, f"{prefix}{name}.")
        else:
            names.add(f"{prefix}{name}")
    return names


def named(document: dict[str, Any], prefix: str = "") -> set[str]:
    names = set()
    for key, value in document.items():
        if isinstance(value, dict) and key not in ("schedules", "ping_urls"):
            names |= named(value, f"{prefix}{key}.")
        else:
            names.add(f"{prefix}{key}")
    return names


def test_the_documented_example_loads_and_names_every_setting(tmp_path: Path) -> None:
    example = tmp_path / "ops.toml"
    example.write_text(uncommented(settings_example()))
    loaded = load_settings(example)
    assert named(tomllib.loads(uncommented(settings_example()))) == setting_names(Settings)

    defaults = Settings()
    for name in Settings.model_fields:
        if name not in NO_DEFAULT_SHOWN:
            assert getattr(loaded, name) == getattr(defaults, name), name
    assert loaded.schedules == {"logs-prune": "0 1 * * *"}
    assert loaded.redis_url == "redis://cache.internal:6379/0"
    assert loaded.database_url == "postgresql://ops:PASSWORD@db.internal:5432/saathii"


# --- docs/operations.md is true to the commands ---------------------------------------


def documented_commands() -> list[list[str]]:
    """Every `saathii-ops …` command of operations.md's shell blocks, as arguments."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", OPERATIONS.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].split(" > ")[0].split(" && ")[0].strip()
            if line.startswith("saathii-ops "):
                commands.append(shlex.split(line)[1:])
    return commands


def test_every_command_the_operators_guide_shows_exists_with_its_options() -> None:
    commands = documented_commands()
    assert len(commands) >= 10
    for args in commands:
        result = Cli(None)(*args, "--help")
        assert result.exit_code == 0, (args, result.stdout + result.stderr)


def test_the_example_config_works_when_copied(tmp_path: Path) -> None:
    """The settings example as it is (its own servers commented out): the first day's
    commands run with it (on the embedded database: no server named)."""
    config = tmp_path / "ops.toml"
    config.write_text(settings_example())
    config.chmod(0o600)
    first_day = [
        ["db", "upgrade"],
        ["db", "adopt"],
        ["badges", "assign"],
        ["coins", "deduct"],
        [
            "cron", "install", "--file", str(tmp_path / "crontab"), "--log-dir",
            str(tmp_path / "logs"), "--executable", SAATHII_OPS,
            "--metrics-file", str(tmp_path / "saathii-ops.prom"),
        ],
        ["status", "--format", "prometheus", "--metrics-file", str(tmp_path / "x.prom")],
    ]  # fmt: skip
    for args in first_day:
        result = Cli(None)("--config", str(config), *args)
        assert result.exit_code in (0, 1), (args, result.stdout + result.stderr)  # 1: unhealthy
        assert result.stderr == "", (args, result.stderr)


def doc_log_lines() -> list[str]:
    match = re.search(r"## Logs\n.*?```text\n(.*?)```", OPERATIONS.read_text(), re.S)
    assert match, "docs/operations.md shows no log lines"
    return match.group(1).splitlines()


def keys(line: str) -> list[str]:
    return re.findall(r'(?:^|(?<= ))(\w+)=(?:"(?:[^"\\]|\\.)*"|\S+)', line.strip())


def test_the_log_lines_the_guide_shows_are_those_a_run_writes(tmp_path: Path) -> None:
    from saathii_ops.output.render import error_log_line

    database = Cli(f"sqlite:///{tmp_path / 'ops.db'}")
    assert database("db", "upgrade").exit_code == 0
    ok, ended, paused, error = doc_log_lines()
    real = database("coins", "deduct").stdout.splitlines()[0]
    assert keys(ok) == keys(real)
    assert ended.startswith("  ended call_id=")
    assert (
        database("jobs", "pause", "presence-cleanup", "--reason", "db maintenance").exit_code == 0
    )
    assert keys(paused) == keys(database("presence", "cleanup").stdout)
    assert keys(error) == keys(error_log_line("coins-deduct", "x y", 3, 0.1))
