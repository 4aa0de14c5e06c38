"""`wallets reconcile` run (SPEC §13): the corrections in one transaction under billing's
job locks (`runner.run_exclusive`), recorded with who made them."""

from __future__ import annotations

import socket
from datetime import datetime

from sqlalchemy.engine import Engine

from saathii_ops.billing.conservation import ConservationError
from saathii_ops.errors import OpsError, PlanChanged
from saathii_ops.jobs import reconcile as service
from saathii_ops.jobs.reconcile import ReconcileReport
from saathii_ops.jobs.reconcile_plan import Scope
from saathii_ops.runtime.identity import user_name
from saathii_ops.runtime.registry import get_job
from saathii_ops.runtime.runner import run_exclusive
from saathii_ops.settings import Settings

# the billing jobs whose locks `reconcile --apply` holds: neither runs meanwhile
BILLING_JOBS = ("coins-deduct", "calls-cleanup")


def reconcile_wallets(
    engine: Engine,
    settings: Settings,
    now: datetime | None,
    *,
    apply: bool,
    scope: Scope,
    reason: str | None,
) -> ReconcileReport:
    """Plan the corrections in `scope`; with `apply`, make and commit them. A violated
    conservation or a row changed under the plan is an OpsError: nothing was changed."""
    corrected_by = f"{user_name()}@{socket.gethostname()}"
    try:
        return run_exclusive(
            engine,
            settings,
            lambda session, now: service.reconcile(
                session,
                now,
                settings,
                apply=apply,
                scope=scope,
                reason=reason,
                corrected_by=corrected_by,
            ),
            now=now,
            apply=apply,
            jobs=[get_job(name) for name in BILLING_JOBS],
        )
    except ConservationError as exc:  # its message says nothing was changed
        raise OpsError(str(exc)) from exc
    except PlanChanged as exc:  # a row changed under the plan, despite the locks
        raise OpsError(f"{exc}: rolled back, nothing was changed; run it again") from exc
