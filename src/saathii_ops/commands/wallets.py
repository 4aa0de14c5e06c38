"""`saathii-ops wallets` (built by a later issue)."""

from saathii_ops.commands.common import not_built

app = not_built("the wallet audit (`wallets audit`)")
