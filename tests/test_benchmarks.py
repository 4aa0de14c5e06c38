"""The benchmark suite's smoke run (benchmarks/suite.py, the tiny scale, once each): the
project, the per-row reference and the SQL floor leave identical database states. It
asserts states, never times."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest
from benchmarks import suite

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
