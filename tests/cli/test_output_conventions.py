"""Unix and JSON conventions of every command (SPEC §9): a closed stdout ends quietly;
with --json an error is also one JSON document on stdout; text from people or the
database is printed as written, never as Rich markup, with control characters escaped."""

from __future__ import annotations

import json
import os
import subprocess
from io import StringIO

import pytest
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.output.render import VerbatimConsole
from tests.conftest import Cli
from tests.factories import T0, add_call, add_user
from tests.support.installed import SAATHII_OPS

REASON = "[red]db migration[/red] step [1] \x1b[31mred\x1b[0m :smile:"
SHOWN = "[red]db migration[/red] step [1] \\x1b[31mred\\x1b[0m :smile:"


@pytest.mark.parametrize("output", [["--json"], []], ids=["json", "text"])
def test_a_closed_stdout_ends_quietly(db_url: str, cli: Cli, output: list[str]) -> None:
    """`saathii-ops jobs history | head -n 1`: the reader is gone before anything is written
    (JSON is written straight to the file, text through Rich)."""
    for _ in range(3):
        assert cli("--now", "2026-11-29T06:00:00Z", "presence", "cleanup").exit_code == 0
    process = subprocess.Popen(
        [SAATHII_OPS, "--database-url", db_url, *output, "jobs", "history"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # as `head` does once it has its line
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1  # the output was cut short; no error line
    assert stderr == ""


@pytest.mark.parametrize(
    ("args", "exit_code", "error"),
    [
        (
            ["--database-url", "postgresql://bob@[::1/x", "--json", "coins", "deduct"],
            2,
            "invalid database URL",
        ),
        (["--json", "jobs", "pause", "no-such-job"], 2, "unknown job 'no-such-job'"),
        (["jobs", "pause", "no-such-job", "--json"], 2, "unknown job 'no-such-job'"),
        (["--json", "--now", "yesterday", "status"], 2, "'yesterday' is not an ISO-8601"),
        (["--json", "jobs", "history", "--limit", "x"], 2, "--limit"),
        (
            ["--database-url", "postgresql://ops@127.0.0.1:1/x", "--json", "coins", "deduct"],
            3,
            "cannot reach the database",
        ),
    ],
)
def test_with_json_every_error_is_also_one_document_on_stdout(
    args: list[str], exit_code: int, error: str
) -> None:
    result = Cli(None)(*args)
    assert result.exit_code == exit_code, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == {"error", "exit_code"}
    assert doc["exit_code"] == exit_code
    assert error in doc["error"]
    assert result.stderr == f"error: {doc['error']}\n"  # the one line on stderr stays


def test_without_json_an_error_leaves_stdout_empty() -> None:
    result = Cli(None)("jobs", "pause", "no-such-job")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: unknown job 'no-such-job'")


def test_a_pause_reason_is_shown_as_written(cli: Cli) -> None:
    paused = cli("jobs", "pause", "coins-deduct", "--reason", REASON)
    assert paused.exit_code == 0, paused.stderr
    assert SHOWN in paused.stdout
    assert "\x1b" not in paused.stdout
    listed = cli("jobs", "list")
    assert SHOWN in listed.stdout
    assert "\x1b" not in listed.stdout
    status = cli("status")
    assert SHOWN in status.stdout
    assert "\x1b" not in status.stdout
    doc = json.loads(cli("--json", "jobs", "list").stdout)
    assert doc[0]["paused_reason"] == REASON  # JSON carries the text itself, escaped by JSON


def test_the_console_shows_text_verbatim_on_a_terminal_too() -> None:
    """On a terminal Rich draws tables with styles of its own; the cell text stays verbatim."""
    from rich.table import Table

    console = VerbatimConsole()
    console.file = StringIO()
    os.environ.setdefault("COLUMNS", "200")
    table = Table(title=REASON)
    table.add_column("reason")
    table.add_row(REASON)
    console.print(table)
    console.print(REASON)
    out = console.file.getvalue()
    assert out.count(SHOWN) == 3
    assert "\x1b" not in out


def test_booleans_read_yes_and_no(cli: Cli, engine: Engine) -> None:
    with transaction(engine) as s:
        caller = add_user(s, balance=1000)
        listener = add_user(s, role="listener", balance=0)
        add_call(s, caller, listener, start=T0)
        s.commit()
    billed = cli("--now", T0.replace(minute=3).isoformat(), "coins", "deduct", "--dry-run")
    assert billed.exit_code == 0, billed.stderr
    text = billed.stdout + cli("db", "current").stdout + cli("db", "adopt").stdout
    assert "True" not in text and "False" not in text
    assert "already_adopted: yes" in text and "at_head: yes" in text
