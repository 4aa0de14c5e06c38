"""The words `status` uses for the kinds of ongoing calls billing cannot bill, in one place:
they are to come from billing's own list of those kinds (with its descriptions) when it has
one, so that a kind added to billing is named here too. Both texts are part of `status
--json` and `--format prometheus` (a figure's description is its HELP line)."""

from __future__ import annotations

# every kind, for the figure that counts them
KINDS = (
    "half-ended by the app, settled before, unknown call type, negative coins spent, no listener"
)

# the kinds in short, for the problem they make
KINDS_IN_SHORT = "half-ended by the app, settled before, or bad rows"
