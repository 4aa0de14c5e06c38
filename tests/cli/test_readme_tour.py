"""README.md's commands run as a reader types them: every command of its tour, on the
demo's embedded database, as the installed `saathii-ops` (a real process)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess

import pytest

from tests.conftest import REPO_ROOT
from tests.support.crontab import fake_crontab
from tests.support.installed import BIN_DIR


def readme_block(heading: str) -> list[str]:
    """The commands of the first ```sh block under `heading`, comments dropped."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index(heading) :]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, f"README.md has no command block under {heading!r}"
    return [
        line.split("  #")[0].strip()
        for line in block.group(1).splitlines()
        if line.strip() and not line.startswith("#")
    ]


TOUR = readme_block("## A tour")


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A new user's environment after `saathii-ops demo`: a fresh data directory and a
    fake `crontab` program."""
    home = tmp_path_factory.mktemp("reader")
    fake_bin = fake_crontab(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAATHII_")}
    env.pop("DATABASE_URL", None)
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        PATH=f"{BIN_DIR}:{fake_bin}:/usr/bin:/bin",
    )
    demo = subprocess.run(["saathii-ops", "demo"], env=env, capture_output=True, text=True)
    assert demo.returncode == 0, demo.stderr
    return env


def test_the_tour_has_commands() -> None:
    assert len(TOUR) >= 8
    assert all(command.startswith("saathii-ops ") for command in TOUR)


@pytest.mark.parametrize("command", TOUR)
def test_every_command_of_the_tour_runs_on_the_demo_database(
    reader: dict[str, str], command: str
) -> None:
    result = subprocess.run(
        shlex.split(command), env=reader, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{command}: {result.stderr}"
    assert "unexpected" not in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.strip(), f"{command} printed nothing"
