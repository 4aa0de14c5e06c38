"""What `badges assign` and `badges show` print: a backfill shows its range and the
badges' totals, not its first date's rows; `badges show` names whose badges it shows."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from saathii_ops.db.engine import transaction
from saathii_ops.db.tables import listener_badges
from tests.conftest import Cli
from tests.factories import add_user

NOW = datetime(2026, 11, 28, 18, 31, tzinfo=UTC)


def _listeners(engine: Engine, n: int) -> None:
    with transaction(engine) as s:
        for _ in range(n):
            add_user(s, role="listener")
        s.commit()


def test_a_backfill_shows_its_range_and_totals(cli: Cli, engine: Engine) -> None:
    _listeners(engine, 60)
    result = cli(
        "--now", NOW.isoformat(), "badges", "assign", "--from", "2026-01-01", "--to", "2026-03-31"
    )
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert ' dates="2026-01-01 to 2026-03-31 (90 days)" ' in out
    assert " basic=5400 " in out and " total=5400 " in out
    assert ' assignments="5400 (--json lists each)" ' in out
    assert "listener_id=" not in out  # no rows of the first date
    assert "(+" not in out
    with transaction(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(listener_badges)) == 5400

    one_day = cli("--now", NOW.isoformat(), "badges", "assign", "--date", "2026-04-01").stdout
    assert " dates=2026-04-01 " in one_day
    assert one_day.count("\n  assignments listener_id=") == 50
    assert "\n  assignments (+10 more; --json shows all)\n" in one_day


def test_badges_show_names_whose_badges_it_shows(cli: Cli, engine: Engine) -> None:
    _listeners(engine, 2)
    cli("--now", NOW.isoformat(), "badges", "assign")
    every = cli("--now", NOW.isoformat(), "badges", "show").stdout
    assert every.splitlines()[0] == "listener badges for 2026-11-29 (every listener)"
    assert "listener_id: -" not in every and "listener id" not in every
    with transaction(engine) as s:
        listener = s.scalar(sa.select(sa.func.min(listener_badges.c.listener_id)))
    one = cli("--now", NOW.isoformat(), "badges", "show", "--listener", str(listener)).stdout
    assert one.splitlines()[0] == f"listener badges for 2026-11-29 (listener {listener})"
    assert f"  listener_id: {listener}\n" in one
