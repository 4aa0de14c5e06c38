"""`saathii-ops jobs` (built by the scheduling issue)."""

from saathii_ops.commands.common import not_built

app = not_built("job control (`jobs list | pause | resume`)")
