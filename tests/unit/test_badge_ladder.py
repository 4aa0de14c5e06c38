"""The badge table rule (SPEC §8), pure: call minutes of the business day before to a
badge, the ladder both the pure rule and the plan's SQL CASE are read off, the table
`badges assign` shows, and business days in Asia/Kolkata. Values worked out by hand;
tests/jobs/test_badges_property.py checks the SQL against the pure rule on both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from saathii_ops.jobs.badges import (
    BadgeRule,
    badge_for_minutes,
    badge_ladder,
    badge_table,
    business_date,
    business_day,
    by_badge,
)
from saathii_ops.settings import BadgeThresholds, Settings

DEFAULT = BadgeThresholds()  # bronze 60, silver 120, gold 180


def test_the_ladder_runs_from_the_highest_badge_down() -> None:
    assert badge_ladder(DEFAULT) == [("gold", 180), ("silver", 120), ("bronze", 60)]


@pytest.mark.parametrize(
    ("minutes", "badge"),
    [
        (0, "basic"),
        (59, "basic"),
        (60, "bronze"),  # a threshold is the least minutes of its badge: reached, earned
        (119, "bronze"),
        (120, "silver"),
        (179, "silver"),
        (180, "gold"),
        (1440, "gold"),  # a whole day on calls
    ],
)
def test_the_default_thresholds(minutes: int, badge: str) -> None:
    assert badge_for_minutes(minutes, DEFAULT) == badge


@pytest.mark.parametrize(
    ("thresholds", "minutes", "badge"),
    [
        (BadgeThresholds(bronze=30, silver=60, gold=90), 89, "silver"),
        (BadgeThresholds(bronze=30, silver=60, gold=90), 90, "gold"),
        # equal thresholds: the highest badge wins, the ones between are never given
        (BadgeThresholds(bronze=60, silver=60, gold=60), 59, "basic"),
        (BadgeThresholds(bronze=60, silver=60, gold=60), 60, "gold"),
        (BadgeThresholds(bronze=0, silver=120, gold=180), 0, "bronze"),  # nobody is basic
        (BadgeThresholds(bronze=0, silver=0, gold=0), 0, "gold"),
    ],
)
def test_configured_thresholds(thresholds: BadgeThresholds, minutes: int, badge: str) -> None:
    assert badge_for_minutes(minutes, thresholds) == badge


def test_the_sql_case_is_the_same_ladder() -> None:
    values = {"gold": "gold", "silver": "silver", "bronze": "bronze", "basic": "basic"}
    case = by_badge(sa.column("minutes", sa.Integer), DEFAULT, values, sa.String(20))
    assert str(case.compile(compile_kwargs={"literal_binds": True})) == (
        "CASE WHEN (minutes >= 180) THEN 'gold' WHEN (minutes >= 120) THEN 'silver' "
        "WHEN (minutes >= 60) THEN 'bronze' ELSE 'basic' END"
    )


def test_the_badge_table_shows_each_badges_least_minutes_and_rates() -> None:
    assert badge_table(Settings()) == [
        BadgeRule("gold", 180, Decimal("1.80"), Decimal("10.00")),
        BadgeRule("silver", 120, Decimal("1.50"), Decimal("8.50")),
        BadgeRule("bronze", 60, Decimal("1.25"), Decimal("7.00")),
        BadgeRule("basic", 0, Decimal("1.00"), Decimal("6.00")),
    ]


@pytest.mark.parametrize(
    ("moment", "day"),
    [
        (datetime(2026, 11, 28, 18, 29, 59, tzinfo=UTC), date(2026, 11, 28)),  # 23:59:59 IST
        (datetime(2026, 11, 28, 18, 30, tzinfo=UTC), date(2026, 11, 29)),  # midnight IST
        (datetime(2026, 11, 29, 6, 0, tzinfo=UTC), date(2026, 11, 29)),
    ],
)
def test_the_business_date_of_an_instant_is_kolkatas(moment: datetime, day: date) -> None:
    assert business_date(moment, Settings()) == day


def test_a_business_day_is_its_kolkata_midnights_in_utc() -> None:
    assert business_day(date(2026, 11, 29), Settings()) == (
        datetime(2026, 11, 28, 18, 30, tzinfo=UTC),
        datetime(2026, 11, 29, 18, 30, tzinfo=UTC),
    )
    assert business_day(date(2026, 11, 29), Settings(timezone="UTC")) == (
        datetime(2026, 11, 29, tzinfo=UTC),
        datetime(2026, 11, 30, tzinfo=UTC),
    )
