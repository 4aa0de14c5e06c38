"""Call cleanup (SPEC §6): end the ongoing calls that should have ended.

The expiry rules live here; billing what is owed up to now and settling are
the billing module's and the settlement module's, exactly as coin deduction
uses them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from saathii_ops.billing.charge import bill_and_settle
from saathii_ops.billing.plan import EndRules
from saathii_ops.billing.report import BillingReport
from saathii_ops.db.sql import elapsed_seconds
from saathii_ops.db.tables import user_status as status
from saathii_ops.runtime.context import RunContext
from saathii_ops.settings import Settings


def end_rules(now: datetime, settings: Settings) -> EndRules:
    """Each rule by the name the report gives as the reason a call ended.

    A party with no user_status row (or no last_seen) is not judged stale.
    """
    stale_before = now - timedelta(minutes=settings.call_stale_minutes)
    longest_seconds = settings.call_max_minutes * 60

    def silent(party: sa.ColumnElement[int | None]) -> sa.ColumnElement[bool]:
        return sa.exists().where(status.c.user_id == party, status.c.last_seen < stale_before)

    return {
        "caller_stale": lambda call: silent(call.c.user_id),
        "listener_stale": lambda call: silent(call.c.listener_id),
        "too_long": lambda call: elapsed_seconds(now, call.c.start_time) > longest_seconds,
        "wait_time_up": lambda call: sa.exists().where(
            status.c.user_id == call.c.user_id, status.c.wait_time <= 0
        ),
    }


def cleanup(run: RunContext[None]) -> BillingReport:
    """`calls cleanup`: bill each expired call up to now, then settle it."""
    return bill_and_settle(run, end_rules(run.now, run.settings))
