"""Rupees and paise: every conversion between them, in Python and in SQL.

Money is computed in whole paise (integers on both dialects: SQLite keeps NUMERIC as
floating point) and turned into rupees (Decimal, NUMERIC(12,2)) only where it is written
or shown.
"""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from saathii_ops.db.tables import Money

PAISE_PER_RUPEE = 100
CENT = Decimal("0.01")
MONEY_MAX_PAISE = 10**12 - 1  # NUMERIC(12,2): withdrawable_money, money_change


def rupees_to_paise(rupees: Decimal) -> int:
    """Whole paise of an amount in rupees with at most two decimal places."""
    return int(rupees * PAISE_PER_RUPEE)


def paise_to_rupees(paise: int) -> Decimal:
    return (Decimal(paise) / PAISE_PER_RUPEE).quantize(CENT)


def rupees_read(value: object) -> Decimal:
    """A rupee amount as the database returned it (SQLite: possibly a float), to the paisa."""
    return Decimal(str(value)).quantize(CENT)


def paise_of(money: sa.ColumnElement[Decimal]) -> sa.ColumnElement[int]:
    """SQL: rupees (NUMERIC) as whole paise, rounded."""
    return sa.cast(sa.func.round(money * PAISE_PER_RUPEE), sa.BigInteger)


def rupees_of(paise: sa.ColumnElement[int]) -> sa.ColumnElement[Decimal]:
    """SQL: paise as NUMERIC(12,2) rupees, exact on PostgreSQL."""
    return sa.cast(paise / sa.literal_column("100.0", sa.Numeric()), Money)


def whole_rupees_of(paise: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """SQL: the whole rupees of non-negative paise (the app's INT listener_money_earned)."""
    return paise // PAISE_PER_RUPEE
