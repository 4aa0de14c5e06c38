"""The command list of `--help` (and of a group given no command)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

import typer
from typer.core import TyperGroup


class HelpFormatter(Protocol):
    """What the command list writes with, of click's HelpFormatter (Typer exports no name
    for it)."""

    def section(self, name: str) -> AbstractContextManager[None]: ...

    def write_dl(self, rows: Sequence[tuple[str, str]]) -> None: ...


class WholeHelpGroup(TyperGroup):
    """Each command listed with the whole first sentence of its help, wrapped at the
    terminal's width: click cuts it to one line ending in "...", hiding what a command
    does at 80 columns."""

    # click's Context, which Typer exports only as its subclass typer.Context
    def format_commands(self, ctx: typer.Context, formatter: HelpFormatter) -> None:  # type: ignore[override]
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=sys.maxsize)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
