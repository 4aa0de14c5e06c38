"""The installed `saathii-ops`: the program the tests run as real processes."""

from __future__ import annotations

import sys
from pathlib import Path

BIN_DIR = Path(sys.executable).parent  # the virtualenv's bin: saathii-ops and its tools
SAATHII_OPS = str(BIN_DIR / "saathii-ops")
