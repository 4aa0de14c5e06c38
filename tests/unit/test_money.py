"""billing.money: every rupee/paise conversion, in Python and as SQL."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from saathii_ops.billing.money import (
    paise_of,
    paise_to_rupees,
    rupees_of,
    rupees_read,
    rupees_to_paise,
    whole_rupees_of,
)


@pytest.mark.parametrize(
    ("rupees", "paise"),
    [
        (Decimal("0.00"), 0),
        (Decimal("0.05"), 5),
        (Decimal("1.25"), 125),
        (Decimal("18.00"), 1800),
        (Decimal("9999999999.99"), 999_999_999_999),
    ],
)
def test_rupees_to_paise(rupees: Decimal, paise: int) -> None:
    assert rupees_to_paise(rupees) == paise


@pytest.mark.parametrize(
    ("paise", "text"),
    [(0, "0.00"), (5, "0.05"), (125, "1.25"), (85700, "857.00"), (-150, "-1.50")],
)
def test_paise_to_rupees_has_two_places(paise: int, text: str) -> None:
    rupees = paise_to_rupees(paise)
    assert str(rupees) == text
    assert rupees_to_paise(rupees) == paise


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("7"), "7.00"),
        (0, "0.00"),
        (3.0100000000000002, "3.01"),  # SQLite's sum of 1.00 + 2.01 as a float
        (0.1 + 0.2, "0.30"),
        (Decimal("12.345"), "12.34"),  # half to even, as Decimal.quantize
    ],
)
def test_rupees_read_is_to_the_paisa(value: object, text: str) -> None:
    assert str(rupees_read(value)) == text


def _sql(expression: sa.ColumnElement[object], dialect: Dialect) -> str:
    return str(expression.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def test_paise_of_rounds_rupees_on_both_dialects() -> None:
    money = sa.column("money", sa.Numeric(12, 2))
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        assert _sql(paise_of(money), dialect) == "CAST(round(money * 100) AS BIGINT)"


def test_rupees_of_divides_by_a_numeric_hundred() -> None:
    paise = sa.column("paise", sa.BigInteger)
    assert _sql(rupees_of(paise), postgresql.dialect()) == (
        "CAST(paise / CAST(100.0 AS NUMERIC) AS NUMERIC(12, 2))"
    )
    assert _sql(rupees_of(paise), sqlite.dialect()) == (
        "CAST(paise / (100.0 + 0.0) AS NUMERIC(12, 2))"
    )


def test_whole_rupees_of_is_integer_division() -> None:
    paise = sa.column("paise", sa.BigInteger)
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        assert _sql(whole_rupees_of(paise), dialect) == "paise / 100"
