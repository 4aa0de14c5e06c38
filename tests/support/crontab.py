"""A stand-in `crontab` program for machines without cron."""

from __future__ import annotations

from pathlib import Path


def fake_crontab(home: Path) -> Path:
    """A directory holding a `crontab` program that keeps the table in a file (this
    machine has no cron)."""
    fake_bin = home / "bin"
    fake_bin.mkdir()
    table = home / "crontab"
    crontab = fake_bin / "crontab"
    crontab.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = -l ]; then [ -f {table} ] || {{ echo "no crontab for me" >&2; exit 1; }}; '
        f"cat {table}; else cat > {table}; fi\n"
    )
    crontab.chmod(0o755)
    return fake_bin
