"""The output layer for the schedule: what `cron install | remove | show` print."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from saathii_ops.output.render import emit_json, render_mapping, render_rows
from saathii_ops.scheduling.block import BLOCK_ID
from saathii_ops.scheduling.targets import encode_crontab

if TYPE_CHECKING:
    from saathii_ops.scheduling.systemd import UnitsChange
    from saathii_ops.scheduling.use_cases import CrontabChange, CrontabState


def print_crontab(content: str) -> None:
    """Exactly the crontab's bytes, also those that are not UTF-8."""
    typer.echo(encode_crontab(content), nl=False)


def render_change(
    console: Console, change: CrontabChange, *, verb: str, json_output: bool, dry_run: bool
) -> None:
    """An install or a remove (`verb`): the document, a dry-run's unified diff of the
    crontab, or one line saying what changed."""
    if json_output:
        emit_json(console, change)
    elif dry_run and change.changed:
        print_crontab("".join(change.diff))
    elif dry_run:
        console.print(f"{change.target}: nothing would change", markup=False)
    elif not change.changed:
        if verb == "installed":
            console.print(f"{change.target} already holds this block: nothing changed")
        else:
            console.print(f"no {BLOCK_ID} block in {change.target}: nothing changed")
    elif verb == "installed":
        console.print(
            f"installed the {BLOCK_ID} block into {change.target} (logs in {change.log_dir})"
        )
    else:
        console.print(f"removed the {BLOCK_ID} block from {change.target}")


def render_units(
    console: Console, change: UnitsChange, *, verb: str, json_output: bool, dry_run: bool
) -> None:
    """systemd units written or removed (`verb`): the document; a dry-run's units in full
    (an install) or their names (a remove); else one line and what to run next."""
    if json_output:
        emit_json(console, change)
        return
    names = change.written if verb == "installed" else change.removed
    where = change.directory
    if dry_run and verb == "installed":
        for name in names:
            console.file.write(f"# {where}/{name}\n{change.units[name]}\n")
        return
    if not names:
        console.print(f"no saathii-ops units in {where}: nothing changed", markup=False)
        return
    user = " --user" if "/systemd/user" in where else ""
    timers = " ".join(name for name in names if name.endswith(".timer"))
    if dry_run:
        console.print(f"would remove from {where}: {' '.join(names)}", markup=False)
    elif verb == "installed":
        console.print(
            f"wrote {len(names)} units into {where}; to start the timers:\n"
            f"  systemctl{user} daemon-reload && systemctl{user} enable --now {timers}",
            markup=False,
        )
    else:
        console.print(
            f"removed {' '.join(names)} from {where}; to unload them:\n"
            f"  systemctl{user} stop {timers}; systemctl{user} daemon-reload",
            markup=False,
        )


def render_kubernetes(
    console: Console, manifests: list[dict[str, Any]], *, json_output: bool
) -> None:
    if json_output:
        emit_json(console, manifests)
        return
    import yaml

    class Dumper(yaml.SafeDumper):
        """Every manifest written out in full (no &anchors for shared parts); a text of
        several lines (the config file) as a literal block, as it reads in the file."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    typer.echo(
        yaml.dump_all(manifests, Dumper=Dumper, sort_keys=False, explicit_start=True), nl=False
    )


def render_state(
    console: Console,
    state: CrontabState,
    *,
    business_tz: str,
    json_output: bool,
    full: bool = True,
) -> None:
    """The summary, then (in full) the block and the next runs, then the diff."""
    if json_output:
        emit_json(console, state)
        return
    render_mapping(
        console,
        f"cron: {state.target}",
        {
            "installed": f"yes, at {state.installed_at}" if state.installed else "no",
            "up_to_date": "yes"
            if state.up_to_date
            else "no: `cron install` would change it (see the diff)",
        },
    )
    if full and state.block is not None:
        console.print(state.block, end="")
    if full and state.next_runs:
        server_tz = state.next_runs[0].server_time[0].tzinfo
        rows = [
            {
                "job": runs.job,
                "schedule": runs.schedule,
                f"next runs ({server_tz})": ", ".join(
                    f"{t:%Y-%m-%d %H:%M}" for t in runs.server_time
                ),
                f"in {business_tz}": ", ".join(f"{t:%Y-%m-%d %H:%M}" for t in runs.business_time),
            }
            for runs in state.next_runs
        ]
        render_rows(console, "next runs", rows)
    if state.diff:
        console.print("\n".join(state.diff))
