"""Every screen on an 80-column terminal (issue 22): no value cut short ("…"), no line
wider than the terminal, no word split across two lines; an id or a URL longer than its
column wraps (folds) instead, and every character of it is still there.

A terminal is forced with Rich's TTY_COMPATIBLE=1 and its width with COLUMNS; colour is
off (NO_COLOR) so that the text is compared as it reads (bold and italic taken out)."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from saathii_ops.runtime.registry import JOBS
from saathii_ops.scheduling import targets
from tests.conftest import Cli, CliResult

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
WIDTH = 80
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# what separates words on a screen: spaces, line breaks and the tables' borders
BETWEEN_WORDS = re.compile(r"[\s│┃┆|]+")
BORDERS = re.compile(r"[\s│┃─━┌┐└┘├┤┬┴┼┏┓┗┛┡┩╇┳┻╋]+")

JOB_COMMANDS = {
    "coins-deduct": ["coins", "deduct"],
    "calls-cleanup": ["calls", "cleanup"],
    "presence-cleanup": ["presence", "cleanup"],
    "badges-assign": ["badges", "assign"],
    "logs-prune": ["logs", "prune"],
    "wallets-audit": ["wallets", "audit"],
}


@pytest.fixture
def url(tmp_path: Path) -> str:
    """An SQLite database whose URL is longer than a line of the terminal."""
    directory = tmp_path / "a-directory-whose-name-is-long-enough-to-need-two-lines"
    directory.mkdir()
    return f"sqlite:///{directory / 'saathii-ops-demo.db'}"


@pytest.fixture
def cli(url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    """The demo's data in that database, on an 80-column terminal."""
    monkeypatch.setenv("SAATHII_SERVER_TIMEZONE", "UTC")
    monkeypatch.setenv("SAATHII_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr(targets, "SYSTEM_CRONTAB", tmp_path / "no-system-crontab")
    monkeypatch.setattr(targets.shutil, "which", lambda name: None)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    monkeypatch.setenv("NO_COLOR", "1")
    made = Cli(url)("--now", NOW.isoformat(), "demo")
    assert made.exit_code == 0, made.stderr
    return Cli(url)


def screen(result: CliResult, *codes: int) -> str:
    """The output, checked for what no screen may do at 80 columns."""
    assert result.exit_code in (codes or (0,)), result.stderr
    text = ESCAPE.sub("", result.stdout)  # bold, italic
    assert "…" not in text, text
    assert not re.search(r"\w\.\.\.\s*$", text, re.M), text  # click's cut help
    too_wide = [line for line in text.splitlines() if len(line.rstrip()) > WIDTH]
    assert not too_wide, too_wide
    return text


def assert_words_whole(text: str, phrase: str) -> None:
    """Every word of `phrase` is a word of the screen: none was split over two lines."""
    words = set(BETWEEN_WORDS.split(text))
    split = [word for word in phrase.split() if word not in words]
    assert not split, f"{split} cut in {text}"


def assert_whole(text: str, value: str) -> None:
    """`value` (an id, a URL) is on the screen to its last character, wrapped or not."""
    assert BORDERS.sub("", value) in BORDERS.sub("", text), f"{value} cut in {text}"


def test_every_job_run_and_dry_run_at_80_columns(cli: Cli, url: str) -> None:
    for job, command in JOB_COMMANDS.items():
        for dry_run in ([], ["--dry-run"]):
            text = screen(cli("--now", NOW.isoformat(), *command, *dry_run), 0, 1)
            assert text.splitlines()[0].startswith(f"{job}: "), text
            assert_whole(text, f"{url} (from --database-url)")
            assert_words_whole(text, "job outcome exit code now duration seconds")
    deduct = screen(cli("--now", NOW.isoformat(), "coins", "deduct"))
    assert_words_whole(deduct, "calls planned again held calls skipped calls")
    presence = screen(cli("--now", NOW.isoformat(), "presence", "cleanup"))
    assert_words_whole(presence, "inactive before 2026-11-29T05:55:00+00:00 still online")
    badges = screen(cli("--now", NOW.isoformat(), "badges", "assign"))
    assert_words_whole(badges, "reassigned 50 audio rate per minute previous day minutes")
    assert_words_whole(badges, "listener id date 2026-11-29 gold silver bronze basic")
    audit = screen(cli("--now", NOW.isoformat(), "wallets", "audit"))
    assert_words_whole(audit, "wallets off the ledger calls ended again after half end")


def test_badges_show_and_a_backfill_at_80_columns(cli: Cli) -> None:
    shown = screen(cli("--now", NOW.isoformat(), "badges", "show"))
    assert_words_whole(shown, "listener badges for 2026-11-29 (every listener)")
    assert_words_whole(shown, "listener id badge audio rate per minute assigned at")
    assert_words_whole(shown, "2026-11-29T06:00:00+00:00")
    backfill = cli(
        "--now", NOW.isoformat(), "badges", "assign", "--from", "2026-11-01", "--to", "2026-11-28"
    )
    text = screen(backfill)
    assert_words_whole(text, "2026-11-01 to 2026-11-28 (28 days) 1400 (--json lists each)")


def test_wallets_audit_and_reconcile_at_80_columns(cli: Cli) -> None:
    # half an hour on, no deduct run: every ongoing call is charged less than due
    later = (NOW + timedelta(minutes=30)).isoformat()
    audit = screen(cli("--now", later, "wallets", "audit"), 1)
    assert_words_whole(audit, "wallets-audit: found 14 ongoing calls charged less than due")
    assert_words_whole(audit, "call id type coins spent due now by now drift undercharged")
    resolved = screen(cli("wallets", "audit", "--resolved"))
    assert_words_whole(resolved, "wallets audit: resolved findings")
    preview = screen(cli("--now", NOW.isoformat(), "wallets", "reconcile"))
    assert_words_whole(
        preview,
        "wallets reconcile: preview (nothing was changed): 0 corrections to make "
        "(collected 0 coins, reversed 0, uncollectable 0); 0 awaiting --reverse or "
        "--accept; 0 to check by hand",
    )


def test_db_commands_at_80_columns(cli: Cli, url: str) -> None:
    for command, keys in (
        ("current", "url from current head at yes adopted"),
        ("adopt", "url from adopted revision already adopted missing keys"),
        ("upgrade", "url from before after"),
    ):
        text = screen(cli("db", command))
        assert text.splitlines()[0].rstrip() == f"db {command}"
        assert_whole(text, url)
        assert_words_whole(text, f"{keys} --database-url")


def test_jobs_list_and_history_at_80_columns(cli: Cli) -> None:
    listed = screen(cli("jobs", "list"))
    assert_words_whole(listed, " ".join(job.name for job in JOBS))
    history = screen(cli("jobs", "history"))
    assert_words_whole(history, " ".join(job.name for job in JOBS))


def test_cron_show_and_check_at_80_columns(cli: Cli, tmp_path: Path) -> None:
    crontab = tmp_path / "crontab"
    executable = str(Path(sys.executable).with_name("saathii-ops"))
    installed = cli(
        "--now", NOW.isoformat(), "cron", "install", "--file", str(crontab),
        "--executable", executable,
    )  # fmt: skip
    assert_whole(screen(installed), str(crontab))
    shown = screen(cli("--now", NOW.isoformat(), "cron", "show", "--file", str(crontab)))
    assert_whole(shown, f"cron: {crontab}")
    assert_words_whole(shown, "installed yes, at up to date job schedule next runs (UTC)")
    for job in JOBS:
        assert_words_whole(shown, job.name)
    # each crontab line whole, wrapped between its words
    for line in crontab.read_text().splitlines():
        if line and not line.startswith("#"):
            assert_whole(shown, line)
    checked = cli("--now", NOW.isoformat(), "cron", "install", "--check", "--file", str(crontab))
    assert_words_whole(screen(checked), "installed yes, at up to date yes")


def test_the_demo_at_80_columns(url: str, cli: Cli) -> None:
    text = screen(cli("--now", NOW.isoformat(), "demo", "--reset"))
    assert_whole(text, f"demo database: {url}")
    assert_words_whole(
        text,
        "calls charged 3, coins charged 90, minutes charged 9, calls ended 3 "
        "gold 8, silver 16, bronze 10, basic 16, total 50, reassigned 17 still online 86 "
        "nothing to do, nothing found",
    )
    assert_words_whole(text, "# what billing would charge now, changing nothing")
    assert_whole(text, f"saathii-ops --database-url {url} coins deduct --dry-run")
    rows = [
        line.split() for line in text.splitlines() if line.split()[:1] in [[j.name] for j in JOBS]
    ]
    assert [row[:2] for row in rows] == [[job.name, "ok"] for job in JOBS]


@pytest.mark.parametrize(
    "group", ["", "badges", "calls", "coins", "cron", "jobs", "logs", "presence", "wallets", "db"]
)
def test_help_lists_every_command_whole_at_80_columns(
    group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from saathii_ops.cli.app import app

    monkeypatch.setenv("COLUMNS", str(WIDTH))
    text = screen(Cli(None)(*group.split(), "--help"))
    command = typer_group(app, group.split())
    for name, sub in command.commands.items():  # type: ignore[attr-defined]
        if not sub.hidden:
            words = (sub.help or "").split("\n\n")[0].split()
            ends = [n for n, word in enumerate(words) if word.endswith(".")]
            sentence = words[: ends[0] + 1] if ends else words
            assert_words_whole(text, " ".join([name, *sentence]))


def typer_group(app: object, path: list[str]) -> object:
    import typer

    command = typer.main.get_command(app)  # type: ignore[arg-type]
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command
