"""The command surface, global options and the one-line errors of SPEC §9."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.models import UserStatus
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
        assert s.scalar(sa.select(UserStatus.is_online)) is False
