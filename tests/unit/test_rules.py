"""billing.rules.affordable_charge, evaluated in Python: values worked out by hand."""

from __future__ import annotations

import pytest

from saathii_ops.billing.rules import affordable_charge


@pytest.mark.parametrize(
    ("owed", "spent", "rate", "available", "charge", "why"),
    [
        (0, 10, 10, 100, 0, "owes nothing"),
        (-10, 30, 10, 50, 0, "charged ahead of its minutes: owes nothing"),
        (20, 10, 10, 25, 20, "the balance covers all it owes"),
        (20, 10, 10, 20, 20, "the balance covers it exactly"),
        (30, 10, 10, 25, 20, "10 + 25 pays 3 whole minutes (30), 20 more than spent"),
        (15, 15, 10, 12, 5, "15 + 12 pays 2 whole minutes (20): 5 tops up the half minute"),
        (30, 10, 10, 9, 0, "10 + 9 pays no minute past the one already paid"),
        (10, 0, 6, 0, 0, "an empty balance pays nothing"),
        (120, 0, 60, 100, 60, "a video minute of 60 from 100 coins"),
        (120, 60, 60, 119, 60, "60 + 119 pays 2 whole minutes (120)"),
    ],
)
def test_affordable_charge(
    owed: int, spent: int, rate: int, available: int, charge: int, why: str
) -> None:
    assert affordable_charge(owed, spent, rate, available) == charge, why
