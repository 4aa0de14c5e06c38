"""Which database a command uses (SPEC §2) and that its output says where the URL came from.

On the app's server DATABASE_URL is always set, with the app's credentials (often
`+asyncpg`): it is a fallback only and never beats the config file's database_url.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from saathii_ops.db.engine import parse_url
from tests.conftest import Cli

# the app's own variable, pointing elsewhere (nothing listens on port 1)
APP_DATABASE_URL = "postgresql+asyncpg://app:app-s3cret@127.0.0.1:1/saathii_app"


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "ops.toml"
    path.write_text(f'database_url = "{db_url}"\n')
    return path


@pytest.fixture
def app_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", APP_DATABASE_URL)


def shown(db_url: str) -> str:
    return parse_url(db_url).render_as_string(hide_password=True)


@pytest.mark.usefixtures("app_database_url")
def test_with_database_url_elsewhere_the_config_files_database_is_used(
    db_url: str, config: Path
) -> None:
    result = Cli(None)("--config", str(config), "--json", "db", "current")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["url"], document["url_from"]) == (shown(db_url), f"config file {config}")
    assert document["at_head"] is True

    human = Cli(None)("--config", str(config), "db", "current")
    assert human.exit_code == 0
    assert f"  url: {shown(db_url)}\n  url_from: config file {config}\n" in human.stdout


@pytest.mark.usefixtures("app_database_url")
def test_database_url_is_the_fallback_when_nothing_else_names_a_database() -> None:
    result = Cli(None)("db", "current")
    assert result.exit_code == 3
    assert result.stderr.startswith(
        "error: cannot reach the database at postgresql+psycopg2://app:***@127.0.0.1:1/"
    )
    assert "app-s3cret" not in result.stderr


def test_saathii_database_url_and_the_option_beat_the_config_file(
    db_url: str, config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("SAATHII_DATABASE_URL", other)
    result = Cli(None)("--config", str(config), "--json", "db", "current")
    assert json.loads(result.stdout)["url_from"] == "SAATHII_DATABASE_URL"
    assert json.loads(result.stdout)["url"] == other
    result = Cli(db_url)("--config", str(config), "--json", "db", "current")
    assert json.loads(result.stdout)["url_from"] == "--database-url"


@pytest.mark.usefixtures("app_database_url")
def test_every_job_run_and_status_name_where_the_database_came_from(
    db_url: str, config: Path
) -> None:
    line = f"database: {shown(db_url)} (from config file {config})"
    for command in (
        ["coins", "deduct"],
        ["calls", "cleanup"],
        ["presence", "cleanup"],
        ["badges", "assign"],
        ["logs", "prune", "--dry-run"],
    ):
        result = Cli(None)("--config", str(config), *command)
        assert result.exit_code == 0, result.stderr
        # on a line of its own, or in a run's one key=value line
        source = line.removeprefix("database: ")
        named = result.stdout.count(f"  {line}\n") + result.stdout.count(f' database="{source}"')
        assert named == 1, result.stdout
        machine = Cli(None)("--config", str(config), "--json", *command)
        assert json.loads(machine.stdout)["database"] == line.removeprefix("database: ")

    status = Cli(None)("--config", str(config), "--json", "status")
    assert json.loads(status.stdout)["database"]["source"] == f"config file {config}"
    status = Cli(None)("--config", str(config), "status")
    assert f"  database: {shown(db_url)} (from config file {config})\n" in status.stdout
