"""Fixtures of the runner's tests: a monitoring service, a stale user."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from tests.support.monitor import Monitor
from tests.support.runs import add_stale_user


@pytest.fixture
def monitor() -> Iterator[Monitor]:
    m = Monitor()
    yield m
    m.close()


@pytest.fixture
def stale_user(engine: Engine) -> int:
    return add_stale_user(engine)
