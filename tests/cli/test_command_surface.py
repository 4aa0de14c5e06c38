"""The command surface, global options and the one-line errors of SPEC §9."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import user_status
from tests.conftest import Cli
from tests.factories import T0, add_user

GROUPS = (
    "badges",
    "presence",
    "calls",
    "coins",
    "cron",
    "jobs",
    "logs",
    "status",
    "wallets",
    "db",
    "demo",
)


def test_help_lists_every_command_group_and_needs_no_database(tmp_path) -> None:
    missing_db = tmp_path / "never-created.db"
    result = Cli(f"sqlite:///{missing_db}")("--help")
    assert result.exit_code == 0
    commands = result.stdout.split("Commands:")[1]
    for group in GROUPS:
        assert f"\n  {group} " in commands, group
    assert not missing_db.exists()


def test_version() -> None:
    result = Cli(None)("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == "saathii-ops 0.1.0"


def test_a_bad_option_is_one_line_and_exit_2() -> None:
    result = Cli(None)("presence", "cleanup", "--bogus")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: No such option: --bogus")


def test_a_bad_now_is_exit_2(cli: Cli) -> None:
    result = cli("--now", "yesterday-ish", "presence", "cleanup")
    assert result.exit_code == 2
    assert "'yesterday-ish' is not an ISO-8601 date-time" in result.stderr


def test_a_naive_now_is_utc_and_an_offset_is_converted(cli: Cli, engine: Engine) -> None:
    import json

    naive = json.loads(cli("--now", "2026-11-29T06:30:00", "--json", "presence", "cleanup").stdout)
    offset = json.loads(
        cli("--now", "2026-11-29T12:00:00+05:30", "presence", "cleanup", "--json").stdout
    )
    assert naive["now"] == offset["now"] == "2026-11-29T06:30:00+00:00"


def test_json_is_accepted_before_and_after_the_command(cli: Cli) -> None:
    import json

    before = cli("--json", "presence", "cleanup", "--dry-run")
    after = cli("presence", "cleanup", "--dry-run", "--json")
    assert json.loads(before.stdout)["outcome"] == json.loads(after.stdout)["outcome"] == "dry-run"


def test_an_unexpected_error_is_one_line_and_the_traceback_needs_v(cli: Cli, monkeypatch) -> None:
    from saathii_ops.jobs import presence

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(presence, "inactive_cutoff", broken)
    quiet = cli("presence", "cleanup", "--dry-run")
    assert quiet.exit_code == 1
    assert quiet.stderr == (
        "error: unexpected ZeroDivisionError: division by zero (-v shows the traceback)\n"
    )
    loud = cli("-v", "presence", "cleanup", "--dry-run")
    assert "Traceback (most recent call last)" in loud.stderr


def test_plain_text_output_when_not_a_terminal(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        add_user(s, online=True, last_seen=T0)
        s.commit()
    result = cli("--now", "2026-11-29T07:00:00", "presence", "cleanup")
    assert result.stdout.startswith("job=presence-cleanup outcome=ok exit_code=0 ")
    assert " marked_offline=1 " in result.stdout
    assert "\x1b[" not in result.stdout and "┃" not in result.stdout
    with transaction(engine) as s:
        assert s.scalar(sa.select(user_status.c.is_online)) is False


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
            ["status", "-v"],
            "-v is a global option: give it before the command, as in `saathii-ops -v status`",
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
