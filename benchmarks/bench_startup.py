"""Start-up cost of the CLI (issue 12): whole-process CPU time (user + system) of
`saathii-ops --help`, `--version` and a completion, against importing Typer and Rich, as
ratios measured in one run (best of N, so that the other processes on the machine count
as little as possible). Run: `python -m benchmarks.bench_startup [runs]`.

`python -X importtime -c "import saathii_ops.cli"` shows where the remaining time goes.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

BASELINE = [sys.executable, "-c", "import typer, rich.console"]
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


def best(runs: int, command: list[str], env: dict[str, str] | None = None) -> float:
    return min(cpu_seconds(command, env) for _ in range(runs))


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    baseline = best(runs, BASELINE)
    print(f"import typer, rich.console: {baseline * 1000:.0f} ms CPU (best of {runs})")
    cases = {
        "--help": ([*CLI, "--help"], None),
        "--version": ([*CLI, "--version"], None),
        "jobs pause <Tab>": (CLI, COMPLETION_ENV),
    }
    for name, (command, env) in cases.items():
        seconds = best(runs, command, env)
        print(f"saathii-ops {name}: {seconds * 1000:.0f} ms CPU, {seconds / baseline:.2f}x")


if __name__ == "__main__":
    main()
