"""Conservation (SPEC §4): what a run takes from callers' wallets, adds to their calls and
writes to the ledger must all equal its plan; the rupees it credits listeners, its 'earn'
rows. Checked before the runner commits: otherwise nothing is changed."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from saathii_ops.billing.money import paise_to_rupees, rupees_read
from saathii_ops.billing.plan import StoredPlan
from saathii_ops.db.tables import user_calls as calls
from saathii_ops.db.tables import user_wallets as wallets


class ConservationError(RuntimeError):
    """Coins or rupees would be created or lost: the run must not commit."""


@dataclass(frozen=True)
class Holdings:
    """What the plan's rows hold right now: the measure of conservation."""

    balance_coins: int  # Σ balance_coins of the wallets charged
    coins_spent: int  # Σ coins_spent of the calls charged
    withdrawable_money: Decimal  # Σ withdrawable_money of the listeners paid


def holdings(session: Session, plan: StoredPlan) -> Holdings:
    charged = plan.charge > 0

    def total(column: sa.ColumnElement[Any], where: sa.ColumnElement[bool]) -> Any:
        return sa.select(sa.func.coalesce(sa.func.sum(column), 0)).where(where).scalar_subquery()

    row = session.execute(
        sa.select(
            total(
                wallets.c.balance_coins,
                wallets.c.wallet_id.in_(sa.select(plan.wallet_id).where(charged)),
            ),
            total(
                sa.func.coalesce(calls.c.coins_spent, 0),
                calls.c.call_id.in_(sa.select(plan.call_id).where(charged)),
            ),
            total(
                wallets.c.withdrawable_money,
                wallets.c.user_id.in_(sa.select(plan.listener_id).where(plan.earnings_paise > 0)),
            ),
        )
    ).one()
    return Holdings(int(row[0]), int(row[1]), rupees_read(row[2]))


def check_conservation(
    *,
    planned_coins: int,
    planned_paise: int,
    before: Holdings,
    after: Holdings,
    spend_coins_written: int,
    earn_money_written: Decimal,
) -> None:
    """SPEC §4: coins taken from wallets = coins added to calls = -Σ spend rows
    (= the plan's charges); rupees credited = Σ earn rows (= the plan's earnings)."""
    coins = {
        "planned": planned_coins,
        "taken from wallets": before.balance_coins - after.balance_coins,
        "added to coins_spent": after.coins_spent - before.coins_spent,
        "spend rows": -spend_coins_written,
    }
    rupees = {
        "planned": paise_to_rupees(planned_paise),
        "credited to listeners": after.withdrawable_money - before.withdrawable_money,
        "earn rows": earn_money_written,
    }
    if len(set(coins.values())) > 1 or len(set(rupees.values())) > 1:
        raise ConservationError(
            "conservation violated, nothing was changed: coins "
            + ", ".join(f"{k} {v}" for k, v in coins.items())
            + "; rupees "
            + ", ".join(f"{k} {v}" for k, v in rupees.items())
        )
