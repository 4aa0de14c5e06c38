"""The badge table as a property (in place of a production-time self-check): over random
thresholds, rates and listeners' call minutes, the badge plan's SQL (a CASE per badge and
per rate) gives every listener exactly the badge and rates of the Python badge table
(`badge_for_minutes`, `rates_for`), on each backend; the real run writes the same rows."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import listener_badges, user_calls
from saathii_ops.jobs import badges
from saathii_ops.settings import BadgeRates, BadgeThresholds, Rates, Settings
from tests.factories import run_context
from tests.support.badges import NOW, add_listener

BADGES = ("basic", "bronze", "silver", "gold")
rates = st.decimals(min_value=0, max_value=Decimal("999.99"), places=2).map(
    lambda value: value.quantize(Decimal("0.01"))
)


def calls_of(minutes: int, calls: int) -> list[int]:
    """`minutes` as the lengths of `calls` calls (none for no minutes)."""
    return [minutes // calls + (i < minutes % calls) for i in range(calls)] if minutes else []


@st.composite
def examples(draw: st.DrawFn) -> tuple[Settings, list[list[int]]]:
    """Settings with random thresholds and rates, and listeners' call lengths (minutes of
    each call on the day before), many of them on a threshold's edge."""
    bronze, silver, gold = sorted(draw(st.lists(st.integers(0, 300), min_size=3, max_size=3)))
    settings = Settings(
        badge_thresholds=BadgeThresholds(bronze=bronze, silver=silver, gold=gold),
        badge_rates=BadgeRates(
            **{badge: Rates(audio=draw(rates), video=draw(rates)) for badge in BADGES}
        ),
    )
    edges = [m for t in (bronze, silver, gold) for m in (t - 1, t, t + 1) if m >= 0]
    total = st.one_of(st.sampled_from(edges), st.integers(0, 400))
    # a listener's minutes, split over up to three calls
    listeners = draw(
        st.lists(
            total.flatmap(
                lambda minutes: st.integers(1, 3).map(
                    lambda n: (
                        [minutes // n + (i < minutes % n) for i in range(n)] if minutes else []
                    )
                )
            ),
            min_size=1,
            max_size=6,
        )
    )
    return settings, listeners


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(example=examples())
def test_the_plan_gives_every_listener_the_badge_tables_badge_and_rates(
    engine: Engine, example: tuple[Settings, list[list[int]]]
) -> None:
    settings, listeners = example
    with transaction(engine) as s:  # each example starts from no listeners and no badges
        s.execute(sa.delete(listener_badges))
        s.execute(sa.delete(user_calls))
        s.commit()
    with transaction(engine) as s:
        minutes = {add_listener(s, *calls): sum(calls) for calls in listeners}
        s.commit()

    with transaction(engine, read_only=True) as s:
        planned = badges.assign(run_context(s, NOW, settings, apply=False))
    with transaction(engine) as s:
        applied = badges.assign(run_context(s, NOW, settings, apply=True))
        s.commit()

    expected = {}
    for listener, total in minutes.items():
        badge = badges.badge_for_minutes(total, settings.badge_thresholds)
        table = badges.rates_for(badge, settings)
        expected[listener] = (total, badge, table.audio, table.video)
    for report in (planned, applied):
        assigned = {
            a.listener_id: (
                a.previous_day_minutes,
                a.badge,
                a.audio_rate_per_minute,
                a.video_rate_per_minute,
            )
            for a in report.assignments
            if a.listener_id in minutes
        }
        assert assigned == expected
    with transaction(engine, read_only=True) as s:
        written = {
            row.listener_id: (row.badge, row.audio_rate_per_minute, row.video_rate_per_minute)
            for row in s.execute(sa.select(listener_badges))
            if row.listener_id in minutes
        }
    assert written == {listener: bill[1:] for listener, bill in expected.items()}
