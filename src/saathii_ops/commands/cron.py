"""`saathii-ops cron` (built by the scheduling issue)."""

from saathii_ops.commands.common import not_built

app = not_built("scheduling (`cron install | show | remove`)")
