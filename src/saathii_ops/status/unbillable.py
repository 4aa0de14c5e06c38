"""The words `status` uses for the kinds of ongoing calls billing cannot bill: read off
billing's own list (`billing.problems.Problem`), so that a kind added there is named here
too. Both texts are part of `status --json` and `--format prometheus` (a figure's
description is its HELP line)."""

from __future__ import annotations

from saathii_ops.billing.problems import Problem

# every kind, for the figure that counts them
KINDS = ", ".join(kind.value.replace("_", " ") for kind in Problem)

# the kinds in short, for the problem they make
KINDS_IN_SHORT = "half-ended by the app, settled before, or bad rows"
