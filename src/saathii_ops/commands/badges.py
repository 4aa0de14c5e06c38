"""`saathii-ops badges` (built by the badges issue)."""

from saathii_ops.commands.common import not_built

app = not_built("badge assignment (`badges assign`, `badges show`)")
