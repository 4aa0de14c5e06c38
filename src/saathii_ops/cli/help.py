"""The command list of `--help` (and of a group given no command)."""

from __future__ import annotations

import sys

from typer._click.core import Context
from typer._click.formatting import HelpFormatter
from typer.core import TyperGroup


class WholeHelpGroup(TyperGroup):
    """Each command listed with the whole first sentence of its help, wrapped at the
    terminal's width: click cuts it to one line ending in "...", hiding what a command
    does at 80 columns."""

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=sys.maxsize)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
