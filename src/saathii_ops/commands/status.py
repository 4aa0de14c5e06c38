"""`saathii-ops status` (built by the status issue)."""

import typer

from saathii_ops.commands.common import JsonOption
from saathii_ops.errors import UsageError


def status(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """The health of the jobs and of the data on one screen (not built yet)."""
    raise UsageError("status is not built yet")
