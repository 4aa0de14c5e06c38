"""The documents the tests hold to the code: docs/operations.md and its settings example."""

from __future__ import annotations

import re

from tests.conftest import REPO_ROOT

OPERATIONS = REPO_ROOT / "docs" / "operations.md"


def settings_example() -> str:
    match = re.search(r"<!-- settings-example -->\n```toml\n(.*?)```", OPERATIONS.read_text(), re.S)
    assert match, "docs/operations.md has no settings example"
    return match.group(1)
