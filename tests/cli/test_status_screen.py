"""`status` on a terminal: the verdict and each problem first with what to do,
one line per job that fits 80 columns, the data, the database; colour through Rich,
off under NO_COLOR and when piped; `-v` every detail; `--watch` refreshes in place.

A terminal is forced with Rich's TTY_COMPATIBLE=1 and its width with COLUMNS."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.output import status_screen as render_status
from saathii_ops.runtime.registry import JOBS
from saathii_ops.scheduling import targets
from tests.conftest import Cli
from tests.factories import add_run

NOW = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=30)
SGR = re.compile(r"\x1b\[([0-9;]*)m")
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> list[str]:
    return [line.rstrip() for line in ESCAPE.sub("", text).splitlines()]


def colours(text: str) -> set[int]:
    """The SGR colour parameters used (foreground/background 30-49, 90-107)."""
    found = set()
    for params in SGR.findall(text):
        for p in params.split(";"):
            if p and (30 <= int(p) <= 49 or 90 <= int(p) <= 107):
                found.add(int(p))
    return found


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The demo's database, made at NOW, with no crontab to be found."""
    monkeypatch.setenv("SAATHII_SERVER_TIMEZONE", "UTC")
    monkeypatch.setattr(targets, "SYSTEM_CRONTAB", tmp_path / "no-system-crontab")
    monkeypatch.setattr(targets.shutil, "which", lambda name: None)
    cli = Cli(None)
    assert cli("--now", NOW.isoformat(), "demo").exit_code == 0
    return cli


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("NO_COLOR", raising=False)
    return monkeypatch


def test_the_demo_half_an_hour_later_at_80_columns(demo: Cli, terminal: pytest.MonkeyPatch) -> None:
    result = demo("--now", LATER.isoformat(), "status")
    assert result.exit_code == 1
    lines = plain(result.stdout)
    # the verdict, then each problem (with what to do) in the first lines
    assert lines[0] == "UNHEALTHY (4 problems)  status at 2026-11-29 06:30:00 UTC"
    assert lines[1].startswith("✗ coins-deduct is overdue: due at 2026-11-29 06:28:00 UTC")
    assert lines[3].startswith("  → `saathii-ops cron install` schedules it;")
    problems = [line for line in lines if line.startswith("✗ ")]
    assert [p.split(":")[0] for p in problems] == [
        "✗ coins-deduct is overdue",
        "✗ calls-cleanup is overdue",
        "✗ presence-cleanup is overdue",
        "✗ billing is behind because coins-deduct is overdue",
    ]
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    # one line per job, its name whole
    header = next(
        n for n, line in enumerate(lines) if re.fullmatch(r"job +state +last run +next run", line)
    )
    rows = lines[header + 1 : header + 1 + len(JOBS)]
    assert [row.split()[0] for row in rows] == [job.name for job in JOBS]
    assert rows[0].split("  ")[0] == "coins-deduct"
    assert re.fullmatch(
        r"coins-deduct +OVERDUE +30 min ago, [<0-9.]+ [0-9.]* ?s +in 1 min", rows[0]
    )
    assert re.fullmatch(r"badges-assign +ok +30 min ago, .* s +18:31 UTC", rows[3]), rows[3]
    assert rows[4].endswith("2026-11-30 01:00 UTC") or rows[4].endswith("01:00 UTC")
    # then the data, then the database
    data = lines.index("data (badge date 2026-11-29 in Asia/Kolkata)")
    assert data > header
    assert any(line.endswith("ongoing calls") for line in lines[data:])
    assert any(line.startswith("database") for line in lines[data:])
    # colour on: red verdict, green ok
    assert "\x1b[1;31mUNHEALTHY (4 problems)" in result.stdout
    assert "\x1b[32mok" in result.stdout
    assert {31, 32, 36} <= colours(result.stdout)


def test_at_160_columns_each_job_is_one_line(demo: Cli, terminal: pytest.MonkeyPatch) -> None:
    terminal.setenv("COLUMNS", "160")
    lines = plain(demo("--now", LATER.isoformat(), "status").stdout)
    assert all(len(line) <= 160 for line in lines)
    # a problem and its advice each on one line
    assert lines[1].endswith("last ran as of 2026-11-29 06:00:00 UTC")
    assert lines[2].startswith("  → ") and lines[3].startswith("✗ ")
    header = next(n for n, line in enumerate(lines) if line.startswith("job "))
    rows = lines[header + 1 : header + 1 + len(JOBS)]
    assert [row.split()[0] for row in rows] == [job.name for job in JOBS]
    assert lines[header + 1 + len(JOBS)] == ""


def test_no_color_keeps_the_screen_without_colour(demo: Cli, terminal: pytest.MonkeyPatch) -> None:
    terminal.setenv("NO_COLOR", "1")
    result = demo("--now", LATER.isoformat(), "status")
    assert colours(result.stdout) == set()
    assert plain(result.stdout)[0] == "UNHEALTHY (4 problems)  status at 2026-11-29 06:30:00 UTC"


def test_piped_status_is_plain_text_without_escape_codes(demo: Cli) -> None:
    result = demo("--now", LATER.isoformat(), "status")
    assert result.exit_code == 1
    assert "\x1b" not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[0] == "status at 2026-11-29T06:30:00+00:00: UNHEALTHY (4 problems)"
    row = next(line for line in lines if line.startswith("  job=coins-deduct "))
    assert "last_run=ok at " in row and " UTC in " in row
    assert "(as of --now 2026-11-29 06:00:00 UTC)" in row
    assert "counts=calls charged 3, coins charged 90, minutes charged 9, calls ended 3, " in row
    assert "next_run=2026-11-29 06:31 UTC" in row and row.endswith("state=OVERDUE")
    assert lines[lines.index("problems:") + 1].startswith("  - coins-deduct is overdue")


def test_verbose_shows_every_job_in_full(demo: Cli, terminal: pytest.MonkeyPatch) -> None:
    for argv in (["-v", "status"], ["--verbose", "status"]):
        lines = plain(demo("--now", LATER.isoformat(), *argv).stdout)
        assert all(len(line) <= 80 for line in lines)
        detail = lines.index("coins-deduct   OVERDUE")
        assert lines[detail + 1].split() == ["schedule", "*", "*", "*", "*", "*", "(UTC)"]
        assert lines[detail + 3].split()[:2] == ["paused", "no"]
        assert lines[detail + 4].startswith("  last run     ok at ")
        text = "\n".join(lines)
        assert "  due at       2026-11-29 06:28:00 UTC" in text
        assert "calls charged 3, coins charged 90" in text


def test_a_paused_coins_deduct_on_the_screen(demo: Cli, terminal: pytest.MonkeyPatch) -> None:
    pause = ("jobs", "pause", "coins-deduct", "--reason", "DB failover")
    assert demo("--now", (NOW + timedelta(minutes=1)).isoformat(), *pause).exit_code == 0
    lines = plain(demo("--now", LATER.isoformat(), "status").stdout)
    text = "\n".join(lines)
    behind = next(n for n, line in enumerate(lines) if line.startswith("✗ billing is behind"))
    assert lines[behind].startswith(
        "✗ billing is behind because coins-deduct is paused since 2026-11-29 06:01:00 UTC"
    )
    advice = " ".join(line.strip() for line in lines[behind + 1 : behind + 4])
    assert "→ `saathii-ops jobs resume coins-deduct`: its next run bills what is owed" in advice
    assert "coins-deduct is overdue" not in text  # paused, not late
    row = next(line for line in lines if line.startswith("coins-deduct "))
    assert row.split()[1] == "paused"
    assert any(
        line.startswith("coins-deduct is paused since 2026-11-29 06:01:00 UTC by ")
        and line.endswith(": DB failover")
        for line in lines
    )


def test_watch_refreshes_in_place_until_ctrl_c(demo: Cli, terminal: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    terminal.setattr(render_status.time, "sleep", sleep)
    result = demo("--now", LATER.isoformat(), "status", "--watch")
    assert result.exit_code == 0, result.stderr
    assert sleeps == [5.0, 5.0]
    # drawn once per refresh (and again as Live stops)
    assert result.stdout.count("UNHEALTHY (4 problems)") >= 2
    assert "every 5 s; Ctrl-C stops" in result.stdout
    assert "\x1b[2K" in result.stdout or "\x1b[1A" in result.stdout  # redrawn in place

    sleeps.clear()
    again = demo("--now", LATER.isoformat(), "status", "--watch", "1.5")
    assert (again.exit_code, sleeps) == (0, [1.5, 1.5])


def test_watch_needs_a_terminal_and_the_screen(demo: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    piped = demo("status", "--watch")
    assert (piped.exit_code, piped.stderr) == (
        2,
        "error: --watch refreshes a terminal: run it on one (or drop --watch)\n",
    )
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert demo("status", "--watch", "--json").exit_code == 2
    assert demo("status", "--watch", "--format", "prometheus").exit_code == 2
    assert demo("status", "--watch", "0.1").exit_code == 2


def test_each_kind_of_problem_says_what_to_do(
    cli: Cli, engine: Engine, terminal: pytest.MonkeyPatch
) -> None:
    terminal.setenv("COLUMNS", "160")
    terminal.setenv("SAATHII_SERVER_TIMEZONE", "UTC")
    with transaction(engine) as s:
        for job in JOBS:
            add_run(s, job.name, "ok", NOW - timedelta(seconds=30))
        add_run(s, "presence-cleanup", "failed", NOW - timedelta(seconds=20), error="boom")
        add_run(
            s,
            "coins-deduct",
            "ok",
            NOW - timedelta(seconds=10),
            reason="some rows failed",
            counts={"skipped_calls": 2},
        )
        s.commit()
    lines = plain(cli("--now", NOW.isoformat(), "status", "--crontab-file", "/none").stdout)
    assert lines[0].startswith("UNHEALTHY (2 problems)")
    assert lines[1:5] == [
        "✗ coins-deduct's last run (at 2026-11-29 05:59:50 UTC) exited 1: skipped calls 2",
        "  → `saathii-ops coins deduct --dry-run` names each",
        "✗ presence-cleanup's last run failed (at 2026-11-29 05:59:40 UTC): boom",
        "  → `saathii-ops jobs history presence-cleanup --failed` lists its failures; "
        "`saathii-ops -v presence cleanup --dry-run` shows the traceback",
    ]
    rows = {
        line.split()[0]: line.split()[1]
        for line in lines
        if line.split()[:1] in (["coins-deduct"], ["presence-cleanup"])
    }
    assert rows == {"coins-deduct": "exit", "presence-cleanup": "FAILED"}


# --- 80 columns: nothing cut, no word broken --------------------------------------------

# a database path long enough to wrap at 80 columns, relative to the test's directory
LONG_DATABASE = "a-database-kept-in-a-directory-named-at-some-length/for-the-status-screen"
SEPARATORS = "/@?&:"


def _database_section(lines: list[str]) -> list[str]:
    """The lines from `database` on."""
    start = next(n for n, line in enumerate(lines) if line.split()[:1] == ["database"])
    return lines[start:]


def test_a_long_database_url_is_shown_whole_wrapped_after_its_separators(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, terminal: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / LONG_DATABASE).mkdir(parents=True)
    url = f"sqlite:///{LONG_DATABASE}/saathii.db"
    cli = Cli(url)
    assert cli("db", "upgrade").exit_code == 0
    lines = plain(cli("--now", NOW.isoformat(), "status", "--crontab-file", "/none").stdout)
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    section = _database_section(lines)
    key, *first = section[0].split(maxsplit=1)
    assert key == "database"
    shown = [*first, *(line.strip() for line in section[1:])]
    url_lines: list[str] = []
    while "".join(url_lines) != url:
        assert url.startswith("".join(url_lines) + shown[len(url_lines)].split()[0]), shown
        url_lines.append(shown[len(url_lines)].split()[0])
    assert len(url_lines) > 1
    assert all(line[-1] in SEPARATORS for line in url_lines[:-1]), url_lines
    assert [line.split()[0] for line in section[len(url_lines) :]] == [
        "server",
        "schema",
        "crontab",
    ]


def test_each_problem_and_what_to_do_wraps_between_words(
    demo: Cli, terminal: pytest.MonkeyPatch
) -> None:
    """At 80 columns each problem and its advice wraps at spaces: put back together, its
    lines are the problem as --json has it, word for word."""
    problems = json.loads(demo("--now", LATER.isoformat(), "status", "--json").stdout)["problems"]
    lines = plain(demo("--now", LATER.isoformat(), "status").stdout)
    shown: list[str] = []
    for line in lines[1 : lines.index("")]:
        if line.startswith("✗ "):
            shown.append(line[2:])
        elif line.startswith("  → "):
            shown.append(line.strip())
        else:  # the next line of a problem or of its advice
            shown[-1] += " " + line.strip()
    assert [text for text in shown if not text.startswith("→")] == problems
    assert [text for text in shown if text.startswith("→")] == [
        f"→ `saathii-ops cron install` schedules it; `saathii-ops {command}` runs it now"
        for command in ("coins deduct", "calls cleanup", "presence cleanup")
    ] + ["→ `saathii-ops coins deduct` bills them now"]


# --- --watch: each refresh whole, its footer included ----------------------------------

# what Live writes to draw a refresh over the last: the cursor up a line, erasing each
REDRAW = re.compile(r"\r?(?:\x1b\[2K\x1b\[1A)+\x1b\[2K")


def test_watch_fits_each_refresh_to_the_terminal_with_its_footer_and_database(
    demo: Cli, terminal: pytest.MonkeyPatch
) -> None:
    terminal.setenv("LINES", "30")
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise KeyboardInterrupt

    terminal.setattr(render_status.time, "sleep", sleep)
    result = demo("--now", LATER.isoformat(), "status", "--watch")
    assert result.exit_code == 0, result.stderr
    frames = [plain(frame) for frame in REDRAW.split(result.stdout)]
    frames = [frame for frame in frames if any(frame)]
    assert len(frames) >= 3
    for frame in frames:
        assert len(frame) <= 30, frame
        assert all(len(line) <= 80 for line in frame)
        assert frame[0] == "UNHEALTHY (4 problems)  status at 2026-11-29 06:30:00 UTC"
        section = _database_section(frame)
        assert section[0].startswith("database  sqlite:///")
        assert section[-1] == "every 5 s; Ctrl-C stops"
        # the screen does not fit 30 lines: what is left out is counted, above the
        # database and the footer, which are whole
        assert any(
            re.fullmatch(r"… \d+ more lines: a taller terminal shows them", line) for line in frame
        )
