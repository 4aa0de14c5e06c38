"""`saathii-ops coins` (built by the billing issue)."""

from saathii_ops.commands.common import not_built

app = not_built("coin deduction (`coins deduct`)")
