"""Hints for people (issue 14): a global option given after the command, a group given
no command, a typo'd config key, a config file with a password that others can read."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from saathii_ops.runtime.registry import JOBS
from tests.conftest import Cli


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["status", "--config", "/etc/saathii/ops.toml"],
            "--config is a global option: give it before the command, "
            "as in `saathii-ops --config FILE status`",
        ),
        (
            ["coins", "deduct", "--database-url=sqlite:///x.db"],
            "--database-url is a global option: give it before the command, "
            "as in `saathii-ops --database-url URL coins deduct`",
        ),
        (
            ["jobs", "history", "--now", "2026-11-29T06:00"],
            "--now is a global option: give it before the command, "
            "as in `saathii-ops --now ISO-8601 jobs history`",
        ),
        (
            ["presence", "cleanup", "-v"],
            "-v is a global option: give it before the command, "
            "as in `saathii-ops -v presence cleanup`",
        ),
        (
            ["db", "current", "--verbose"],
            "--verbose is a global option: give it before the command, "
            "as in `saathii-ops --verbose db current`",
        ),
    ],
)
def test_a_global_option_after_the_command_says_where_it_goes(argv: list[str], line: str) -> None:
    result = Cli(None)(*argv)
    assert result.exit_code == 2
    assert result.stderr == f"error: {line}\n"
    assert result.stdout == ""


def test_an_unknown_option_is_still_the_plain_error() -> None:
    result = Cli(None)("jobs", "list", "--bogus")
    assert (result.exit_code, result.stderr) == (
        2,
        "error: No such option: --bogus (try 'saathii-ops jobs list --help')\n",
    )


def test_no_command_shows_the_short_usage_and_the_commands() -> None:
    result = Cli(None)()
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "Usage: saathii-ops [OPTIONS] COMMAND [ARGS]..."
    assert "error" not in result.stderr and "Options:" not in result.stderr
    assert lines[2] == "Commands:"
    commands = [line.split()[0] for line in lines[3:] if line.startswith("  ")]
    assert {"status", "demo", "coins", "jobs", "db"} <= set(commands)
    assert lines[-1] == (
        "'saathii-ops COMMAND --help' shows a command's options, "
        "'saathii-ops --help' the global options"
    )
    assert len(lines) < 25


def test_a_group_with_no_command_shows_its_commands() -> None:
    result = Cli(None)("jobs")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "Usage: saathii-ops jobs [OPTIONS] COMMAND [ARGS]..."
    # a command's line (its help wraps onto lines indented further)
    assert [line.split()[0] for line in lines if re.match(r"  \S", line)] == [
        "list",
        "pause",
        "resume",
        "history",
    ]
    assert lines[-1] == "'saathii-ops jobs COMMAND --help' shows a command's options"
    coins = Cli(None)("coins")
    assert coins.stderr.startswith("Usage: saathii-ops coins [OPTIONS] COMMAND [ARGS]...\n")
    assert "  deduct  " in coins.stderr and "error" not in coins.stderr


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "presence_inactive_minute = 5",
            "presence_inactive_minute: unknown setting (did you mean presence_inactive_minutes?)",
        ),
        (
            "[coins_per_minute]\naudoi = 12",
            "coins_per_minute.audoi: unknown setting (did you mean coins_per_minute.audio?)",
        ),
        (
            '[badge_rates.gold]\naudio = "2"\nvideo = "9"\nvidoe = "9"',
            "badge_rates.gold.vidoe: unknown setting (did you mean badge_rates.gold.video?)",
        ),
        (
            "[coin_per_minute]\naudio = 12",
            "coin_per_minute: unknown setting (did you mean coins_per_minute?)",
        ),
        ("colour = true", "colour: unknown setting"),
    ],
)
def test_a_typod_config_key_gets_a_did_you_mean(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(toml)
    result = Cli(f"sqlite:///{tmp_path / 'x.db'}")("--config", str(config), "jobs", "list")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].startswith(f"error: invalid configuration: {message}")


def test_a_config_file_with_a_password_readable_by_others_is_warned_of(
    tmp_path: Path, db_url: str
) -> None:
    config = tmp_path / "ops.toml"
    config.write_text('redis_url = "redis://:s3cret@127.0.0.1:1/0"\n')
    cli = Cli(db_url)
    for mode, warned in ((0o644, True), (0o640, True), (0o604, True), (0o600, False)):
        config.chmod(mode)
        result = cli("--config", str(config), "jobs", "list")
        assert result.exit_code == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        expected = [
            f"warning: config file {config} holds a password and others can read it "
            f"(mode {mode:o}): chmod 600 {config}"
        ]
        assert warnings == (expected if warned else []), oct(mode)
        assert "s3cret" not in result.stderr + result.stdout
        assert len(result.stdout.splitlines()) == 1 + len(JOBS)
    # no password, no warning, whatever the mode
    config.write_text('timezone = "UTC"\n')
    config.chmod(0o644)
    assert "warning" not in cli("--config", str(config), "jobs", "list").stderr
