"""Start-up cost of the CLI (issue 12) and of a job run (issue 23): whole-process CPU time
(user + system) of `saathii-ops --help`, `--version` and a completion, against importing
Typer and Rich; and of `saathii-ops coins deduct` on an empty embedded database (migrated,
no rows: a job's whole path with nothing to bill), against importing Typer, Rich,
SQLAlchemy's ORM and psycopg2. Ratios measured in one run, the commands alternating (best
of N, so that the other processes on the machine count as little as possible). Run:
`python -m benchmarks.bench_startup [runs]`.

`python -X importtime -c "import saathii_ops.cli.app"` shows where the remaining time goes.
"""

from __future__ import annotations

import compileall
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

BASELINE = [sys.executable, "-c", "import typer, rich.console"]
# what any job needs loaded: the CLI's libraries, the ORM and the PostgreSQL driver
JOB_BASELINE = [sys.executable, "-c", "import typer, rich, sqlalchemy.orm, psycopg2"]
# the installed entry point, as cron and the shell run it
CLI = [str(Path(sys.executable).with_name("saathii-ops"))]
COMPLETION_ENV = {
    "_SAATHII_OPS_COMPLETE": "complete_bash",
    "COMP_WORDS": "saathii-ops jobs pause ",
    "COMP_CWORD": "3",
}


def cpu_seconds(command: list[str], env: dict[str, str] | None = None) -> float:
    """CPU time of one run of `command` (user + system, its children included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        command,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compile_as_pip_does() -> None:
    """`pip install .` writes the bytecode of every module it installs, as it did for the
    baseline's libraries; an editable install (the README's, for development) leaves it to
    the first import, which PYTHONDONTWRITEBYTECODE (set on this machine) forbids. Without
    this every run here would compile the package's modules from source (~50 ms of CPU),
    which no installed `saathii-ops` does."""
    import saathii_ops

    compileall.compile_dir(Path(saathii_ops.__file__).parent, quiet=1)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    compile_as_pip_does()
    with tempfile.TemporaryDirectory(prefix="saathii-startup-") as data_home:
        # the embedded default lives in the user's data directory: a fresh one, migrated
        embedded = {"XDG_DATA_HOME": data_home}
        subprocess.run(
            [*CLI, "db", "upgrade"],
            env={**os.environ, **embedded},
            stdout=subprocess.DEVNULL,
            check=True,
        )
        cases = {
            "import typer, rich.console": (BASELINE, None),
            "--help": ([*CLI, "--help"], None),
            "--version": ([*CLI, "--version"], None),
            "jobs pause <Tab>": (CLI, COMPLETION_ENV),
            "import typer, rich, sqlalchemy.orm, psycopg2": (JOB_BASELINE, None),
            "coins deduct (empty embedded database)": ([*CLI, "coins", "deduct"], embedded),
        }
        # alternating: one run of each in turn, N times; the best of each
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(runs):
            for name, (command, env) in cases.items():
                times[name].append(cpu_seconds(command, env))
    seconds = {name: min(t) for name, t in times.items()}
    for name in cases:
        if name.startswith("import"):
            baseline = seconds[name]
            print(f"{name}: {baseline * 1000:.0f} ms CPU (best of {runs})")
        else:
            ratio = seconds[name] / baseline
            print(f"saathii-ops {name}: {seconds[name] * 1000:.0f} ms CPU, {ratio:.2f}x")


if __name__ == "__main__":
    main()
