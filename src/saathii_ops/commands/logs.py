"""`saathii-ops logs` (built by the scheduling issue)."""

from saathii_ops.commands.common import not_built

app = not_built("log pruning (`logs prune`)")
