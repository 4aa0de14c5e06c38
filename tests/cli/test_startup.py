"""A fast start: importing the CLI loads none of the heavy libraries, and shell
completion completes job names without them. Its CPU time is measured by
benchmarks/bench_startup.py, not here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from saathii_ops.runtime.registry import JOBS
from tests.conftest import Cli

HEAVY = (
    "sqlalchemy",
    "alembic",
    "redis",
    "psycopg2",
    "prometheus_client",
    "yaml",  # PyYAML
    "croniter",
    "crontab",  # python-crontab
    "pydantic",
)


def loaded_after(code: str, env: dict[str, str] | None = None) -> tuple[list[str], str]:
    """The heavy libraries in sys.modules after running `code` in a fresh interpreter,
    and what it printed before."""
    script = (
        f"import sys\n{code}\nprint('loaded:', ' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    output, _, loaded = done.stdout.rpartition("loaded:")
    return loaded.split(), output


def test_importing_the_cli_loads_none_of_the_heavy_libraries() -> None:
    assert loaded_after("import saathii_ops.cli.app") == ([], "")


def test_help_and_version_load_none_of_them() -> None:
    for option in ("--help", "--version"):
        code = (
            "from saathii_ops.cli.app import app\n"
            f"try:\n    app([{option!r}], prog_name='saathii-ops')\nexcept SystemExit:\n    pass"
        )
        loaded, output = loaded_after(code)
        assert loaded == [], option
        assert "saathii-ops" in output


def complete(words: str) -> tuple[list[str], list[str]]:
    """Bash completion of the last word of `words`; the heavy libraries it loaded."""
    code = (
        "from saathii_ops.cli.app import app\n"
        "try:\n    app(prog_name='saathii-ops')\nexcept SystemExit:\n    pass"
    )
    loaded, output = loaded_after(
        code,
        {
            "_SAATHII_OPS_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split(" ")) - 1),
        },
    )
    return output.split(), loaded


@pytest.mark.parametrize("command", ["pause", "resume", "history"])
def test_completion_completes_job_names_without_the_heavy_libraries(command: str) -> None:
    assert complete(f"saathii-ops jobs {command} ") == ([job.name for job in JOBS], [])
    assert complete(f"saathii-ops jobs {command} c") == (["coins-deduct", "calls-cleanup"], [])
    assert complete(f"saathii-ops --json jobs {command} wall") == (["wallets-audit"], [])


def test_completion_completes_commands() -> None:
    names, loaded = complete("saathii-ops jobs ")
    assert names == ["list", "pause", "resume", "history"] and loaded == []


JOB_RUN = """
import sys
from saathii_ops.cli.app import app
from saathii_ops.db.schema import MIGRATIONS_DIR

opened = []
def audit(event, args):
    if event == "open" and isinstance(args[0], str) and args[0].startswith(str(MIGRATIONS_DIR)):
        opened.append(args[0])
sys.addaudithook(audit)
try:
    app({argv!r}, prog_name="saathii-ops")
except SystemExit as exit:
    code = exit.code
print("exit:", code)
print("opened:", *opened)
print("loaded:", *sorted(m for m in sys.modules if m.startswith({unwanted!r})))
"""
# what a job run does without: Alembic and the migration scripts (the schema check reads
# alembic_version), the schedules' libraries (`jobs list` shows schedules, a run does not)
NOT_ON_A_JOB_RUN = ("alembic", "saathii_ops.db.migrations", "croniter", "crontab")


def job_run(argv: list[str], unwanted: tuple[str, ...] = NOT_ON_A_JOB_RUN) -> list[str]:
    """A job run in a fresh interpreter: its exit code, the migration files it opened and
    the `unwanted` modules it imported, a line each."""
    code = JOB_RUN.format(argv=argv, unwanted=unwanted)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-3:]


def test_a_job_run_reads_no_alembic_nor_migration_script(db_url: str) -> None:
    """The schema check stays (tests/runtime/test_schema.py), without Alembic: a job starts on
    what it needs."""
    lines = job_run(["--database-url", db_url, "coins", "deduct"])
    assert [line.split() for line in lines] == [["exit:", "0"], ["opened:"], ["loaded:"]]


def test_a_job_run_on_the_empty_embedded_database_reads_no_alembic() -> None:
    # the embedded default (tests/conftest.py: a data directory of the test's own)
    upgraded = Cli(None)("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.stderr
    # nor, on SQLite, the PostgreSQL dialect
    lines = job_run(["coins", "deduct"], (*NOT_ON_A_JOB_RUN, "sqlalchemy.dialects.postgresql"))
    assert [line.split() for line in lines] == [["exit:", "0"], ["opened:"], ["loaded:"]]


def test_a_job_run_imports_no_other_command_and_coerces_no_option_it_is_not_given() -> None:
    """`coins deduct` builds the coins group only (its command comes from the registry),
    the options it is not given (all but none) build no pydantic adapter, and its log line
    needs no Rich table."""
    upgraded = Cli(None)("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.stderr
    unwanted = ("saathii_ops.cli.commands.", "typer._adapters", "rich.table")
    lines = job_run(["coins", "deduct"], unwanted)
    assert [line.split() for line in lines] == [["exit:", "0"], ["opened:"], ["loaded:"]]
    # a command in a module: that module only
    lines = job_run(["--now", "2026-12-07T10:00", "jobs", "list"], ("saathii_ops.cli.commands.",))
    assert [line.split() for line in lines][2] == ["loaded:", "saathii_ops.cli.commands.jobs"]
