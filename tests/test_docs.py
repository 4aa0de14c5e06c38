"""docs/cli.md is generated from `--help` (Typer's docs generator) and must not drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
