"""The root's commands, each built only when a command line names it (click's "lazily
loading subcommands"): a job run from cron imports and builds its own group, not the
other ten, and `--help` builds them all to list them."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import typer

from saathii_ops.cli.common import job_command
from saathii_ops.cli.help import WholeHelpGroup
from saathii_ops.runtime.registry import JOBS

if TYPE_CHECKING:
    from typer.core import TyperCommand, TyperGroup

# in the order --help lists them: "module:attribute" under saathii_ops.cli.commands, a
# command's function or a group's Typer app; a group of jobs without options of their own
# is made here from its help. A group's jobs that its module does not declare get their
# command from their registry entry.
ROOT_COMMANDS: dict[str, str] = {
    "status": "status:status",
    "demo": "demo:demo",
    "badges": "badges:app",
    "presence": "User presence.",
    "calls": "Calls.",
    "coins": "Coin billing.",
    "cron": "cron:app",
    "jobs": "jobs:app",
    "logs": "logs:app",
    "wallets": "wallets:app",
    "db": "db:app",
}


class LazyCommands(Mapping[str, "TyperCommand | TyperGroup"]):
    """The root group's `commands`: every name known, each command built when read."""

    def __init__(self, entries: dict[str, str]) -> None:
        self.entries = entries

    def __getitem__(self, name: str) -> TyperCommand | TyperGroup:
        return build_root_command(name, self.entries[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def build_root_command(name: str, entry: str) -> TyperCommand | TyperGroup:
    """The click command Typer makes of one root command, as the root would make it (the
    same Typer options: no rich markup, plain exceptions)."""
    root = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False, add_completion=False)
    root.callback()(_root_without_options)  # a group, as the root is, whatever it holds
    module_name, _, attribute = entry.partition(":")
    if attribute:
        module = importlib.import_module(f"saathii_ops.cli.commands.{module_name}")
        target = getattr(module, attribute)
    else:
        target = typer.Typer(cls=WholeHelpGroup, help=entry, no_args_is_help=True)
    if isinstance(target, typer.Typer):
        _add_job_commands(name, target)
        root.add_typer(target, name=name)
    else:
        root.command(name)(target)
    return typer.main.get_command(root).commands[name]  # type: ignore[attr-defined,no-any-return]


def _root_without_options() -> None:
    """The stand-in root of one command's build."""


def _add_job_commands(group_name: str, group: typer.Typer) -> None:
    """Each registered job of the group whose command its module does not declare: the
    command made from its registry entry (once: a group is built again on each run)."""
    declared = {
        info.name or getattr(info.callback, "__name__", "") for info in group.registered_commands
    }
    for job in JOBS:
        job_group, command_name = job.command.split()
        if job_group == group_name and command_name not in declared:
            group.command(command_name, help=job.help)(job_command(job))
