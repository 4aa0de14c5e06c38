"""Fixtures of the schedule's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cron import FOREIGN


@pytest.fixture
def executable(tmp_path: Path) -> Path:
    """A stand-in for the installed saathii-ops: prints the arguments it was run with."""
    path = tmp_path / "bin" / "saathii-ops"
    path.parent.mkdir()
    path.write_text('#!/bin/sh\necho "ran: $*"\n')
    path.chmod(0o755)
    return path


@pytest.fixture
def crontab_file(tmp_path: Path) -> Path:
    """A crontab someone already uses (FOREIGN)."""
    path = tmp_path / "crontab"
    path.write_bytes(FOREIGN)
    return path
