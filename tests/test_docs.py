"""The documents stay true: docs/cli.md is generated from `--help` (Typer's docs
generator) and must not drift; docs/operations.md's configuration example loads and names
every setting, with the defaults it claims."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from saathii_ops.settings import Settings, load_settings

CLI_DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
GENERATE = [
    sys.executable,
    "-m",
    "typer",
    "saathii_ops.cli",
    "utils",
    "docs",
    "--name",
    "saathii-ops",
]


def test_cli_docs_are_what_the_help_says_now() -> None:
    generated = subprocess.run(GENERATE, capture_output=True, text=True, check=True).stdout
    assert CLI_DOCS.read_text(encoding="utf-8") == generated, (
        "docs/cli.md is stale: python -m typer saathii_ops.cli utils docs "
        "--name saathii-ops > docs/cli.md"
    )


OPERATIONS = CLI_DOCS.parent / "operations.md"
# settings whose example is a value of one's own, not the default (which is none)
NO_DEFAULT_SHOWN = {
    "database_url",
    "server_timezone",
    "schedules",
    "ping_url",
    "ping_urls",
    "redis_url",
}


def settings_example() -> str:
    match = re.search(r"<!-- settings-example -->\n```toml\n(.*?)```", OPERATIONS.read_text(), re.S)
    assert match, "docs/operations.md has no settings example"
    return match.group(1)


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
    example.write_text(settings_example())
    loaded = load_settings(example)
    assert named(tomllib.loads(settings_example())) == setting_names(Settings)

    defaults = Settings()
    for name in Settings.model_fields:
        if name not in NO_DEFAULT_SHOWN:
            assert getattr(loaded, name) == getattr(defaults, name), name
    assert loaded.schedules == {"logs-prune": "0 1 * * *"}
    assert loaded.redis_url == "redis://cache.internal:6379/0"
