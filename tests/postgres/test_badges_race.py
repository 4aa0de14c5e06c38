"""PostgreSQL only: the daily badge run reads and writes one plan while the app keeps
working. Under READ COMMITTED each statement sees what was committed before it: a call
completing or a listener added between reading the plan and upserting it made the run
fail (PlanChanged) and wait for the next day. Here the app commits both right after the
run's first statement that reads the plan."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import listener_badges, user_calls
from saathii_ops.runtime.registry import get_job
from saathii_ops.runtime.runner import run_job
from saathii_ops.settings import Settings
from tests.factories import add_call, add_user

D = date(2026, 11, 29)
NOW = datetime(2026, 11, 28, 18, 31, tzinfo=UTC)  # 00:01 on D in Asia/Kolkata
YESTERDAY_NOON = datetime(2026, 11, 28, 6, 30, tzinfo=UTC)  # 12:00 on D - 1 in Kolkata


pytestmark = pytest.mark.usefixtures("postgresql_only")


def badges_of(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(listener_badges.c.listener_id, listener_badges.c.badge).where(
                listener_badges.c.date == D
            )
        )
        return {listener: badge for listener, badge in found}


def test_a_call_completing_and_a_listener_added_during_the_run_do_not_fail_it(
    engine: Engine,
) -> None:
    with transaction(engine) as s:
        caller = add_user(s)
        bronze = add_user(s, role="listener")
        add_call(s, caller, bronze, start=YESTERDAY_NOON, status="completed", duration_minutes=60)
        basic = add_user(s, role="listener")
        # ongoing at the run's start; the app ends it (silver minutes) while the run works
        finishing = add_call(s, caller, basic, start=YESTERDAY_NOON)
        s.commit()

    added: list[int] = []

    def the_app_commits(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if added or "minutes_by_listener" not in statement:
            return
        with transaction(engine) as app:
            app.execute(
                sa.update(user_calls)
                .where(user_calls.c.call_id == finishing)
                .values(status="completed", duration_minutes=150)
            )
            added.append(add_user(app, role="listener"))
            app.commit()

    sa.event.listen(engine, "after_cursor_execute", the_app_commits)
    try:
        result = run_job(engine, Settings(), get_job("badges-assign"), now=NOW, dry_run=False)
    finally:
        sa.event.remove(engine, "after_cursor_execute", the_app_commits)

    assert added, "the app's change was never made"
    assert (result.outcome, result.error) == ("ok", None)
    # the run's one snapshot: before the app's commit, and what it wrote is what it reports
    assert result.report is not None
    assignments = {a.listener_id: a.badge for a in result.report.assignments}  # type: ignore[attr-defined]
    assert assignments == {bronze: "bronze", basic: "basic"}
    assert badges_of(engine) == assignments
    # the next run sees the app's changes
    again = run_job(engine, Settings(), get_job("badges-assign"), now=NOW, dry_run=False)
    assert again.outcome == "ok"
    assert badges_of(engine) == {bronze: "bronze", basic: "silver", added[0]: "basic"}
    assert {a.listener_id for a in again.report.assignments} == set(badges_of(engine))  # type: ignore[union-attr]


def test_the_report_of_a_real_run_is_what_a_dry_run_shows(engine: Engine) -> None:
    with transaction(engine) as s:
        caller = add_user(s)
        for minutes in (0, 59, 60, 120, 180, 500):
            listener = add_user(s, role="listener")
            if minutes:
                add_call(
                    s,
                    caller,
                    listener,
                    start=YESTERDAY_NOON + timedelta(minutes=minutes),
                    status="completed",
                    duration_minutes=minutes,
                )
        s.commit()
    job = get_job("badges-assign")
    dry = run_job(engine, Settings(), job, now=NOW, dry_run=True)
    real = run_job(engine, Settings(), job, now=NOW, dry_run=False)
    assert real.outcome == "ok"
    assert real.report == dry.report
    assert real.report is not None
    assert [a.badge for a in real.report.assignments] == [  # type: ignore[attr-defined]
        "basic",
        "basic",
        "bronze",
        "silver",
        "gold",
        "gold",
    ]
