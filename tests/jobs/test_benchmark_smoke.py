"""The benchmark suite's smoke run (benchmarks/suite.py, the tiny scale, once each): the
project, the per-row reference and the SQL floor leave identical database states. It
asserts states, never times."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from benchmarks import suite

from saathii_ops.db.engine import make_engine
from tests.conftest import NO_POSTGRES, POSTGRES_ADMIN_URL

pytestmark = [
    pytest.mark.benchmark_smoke,
    pytest.mark.skipif(not POSTGRES_ADMIN_URL, reason=NO_POSTGRES),
    pytest.mark.skipif(shutil.which("psql") is None, reason="the floor runs with psql"),
    pytest.mark.skipif(not os.path.exists("/usr/bin/time"), reason="peak RSS by GNU time"),
]


def test_the_three_implementations_leave_identical_states() -> None:
    assert POSTGRES_ADMIN_URL
    lines: list[str] = []
    results = suite.run(
        ["tiny"],
        repeat=1,
        server_url=POSTGRES_ADMIN_URL,
        prefix=f"bench_{uuid.uuid4().hex[:8]}_",
        say=lines.append,
    )

    assert sorted(r.case for r in results) == sorted(c.name for c in suite.SCALES["tiny"])
    for result in results:
        assert result.states_equal, (result.case, result.states, lines)
        ran = set(result.seconds)
        expected = {"project"}
        expected |= {"reference"} if result.job in suite.REFERENCE_JOBS else set()
        expected |= {"floor"} if result.dialect == "postgresql" else set()
        assert ran == expected, result.case
        # the digest sees the change: every job but the audit changes the population
        assert result.changed == (result.job != "wallets-audit"), result.case


def test_the_settlement_heavy_population_ends_a_sixth_of_its_calls(tmp_path: Path) -> None:
    """The settlement-heavy population: 3 users and 5 past calls per ongoing call, and in a 7-minute
    catch-up about one call in six runs out of coins and is settled. At 300 calls: the 43
    callers i = 1, 8, …, 295 (i % 7 = 1) have less than 7 minutes of their call's coins,
    and the 5 others of the 2% nearly empty wallets (i = 100, 150, …, 300: i % 50 = 0, i = 50
    is among the 43) 0 to 8 coins: 48 calls end."""
    assert POSTGRES_ADMIN_URL
    case = next(c for c in suite.SCALES["tiny"] if "a sixth run out" in c.name)
    assert (case.size, case.population.past_calls, case.later) == (300, 5, timedelta(minutes=7))
    databases = suite.Databases(POSTGRES_ADMIN_URL, f"bench_{uuid.uuid4().hex[:8]}_", tmp_path)
    try:
        with (
            databases.template(case.population, case.dialect) as template,
            databases.copy(template, case.dialect) as url,
        ):
            subprocess.run(suite._argv("project", case, url, tmp_path), check=True)
            engine = make_engine(url)
            try:
                with engine.connect() as conn:
                    users, past, ongoing, ended, settled = conn.execute(
                        sa.text(
                            "SELECT (SELECT count(*) FROM users),"
                            " count(*) FILTER (WHERE status = 'completed' OR end_time < :start),"
                            " count(*) FILTER (WHERE status = 'ongoing'),"
                            " count(*) FILTER (WHERE status = 'dropped' AND end_time = :now),"
                            " (SELECT count(*) FROM ops_settlements)"
                            " FROM user_calls"
                        ),
                        {"now": case.now, "start": suite.NOW},
                    ).one()
            finally:
                engine.dispose()
    finally:
        databases.close()
    assert (users, past) == (900, 1500)
    assert (ongoing, ended, settled) == (252, 48, 48)
