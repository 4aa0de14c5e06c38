"""`saathii-ops calls` (built by the billing issue)."""

from saathii_ops.commands.common import not_built

app = not_built("call cleanup (`calls cleanup`)")
