"""What an installed schedule runs against: its configuration file and its database.

A cron block and a systemd unit record the options they were installed with (OPTIONS_LINE);
those options say which config file and which database the jobs use. One function turns
them into a target, and one compares two targets: `cron install` refuses to replace a
schedule of another target (unless --force), and `status` counts a job as scheduled only
when the schedule targets the configuration and database it is looking at (SPEC §10-11).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from saathii_ops.settings import UrlSource

ENV_FILE_DATABASE_URL = "SAATHII_DATABASE_URL"
MAX_ENV_FILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class ScheduleTarget:
    """`config`: the config file's absolute path, None for none. `database`: the URL the
    schedule passes (without its password), None when the configuration names it (the
    config file's database_url, else the embedded default)."""

    config: str | None
    database: str | None

    def describe(self) -> str:
        config = f"--config {self.config}" if self.config else "no --config"
        database = self.database or "the one its configuration names"
        return f"{config}, database {database}"


def _same_file(path: str | Path) -> str:
    return os.path.realpath(path)


def comparable_url(url: str) -> str:
    """A URL as targets compare it: parsed (the driver named the same way), no password."""
    from saathii_ops.db.engine import display_url, parse_url
    from saathii_ops.errors import UsageError

    try:
        return display_url(parse_url(url))
    except UsageError:
        from saathii_ops.output.masking import mask_secrets

        return mask_secrets(url)


def env_file_database_url(path: Path) -> str | None:
    """SAATHII_DATABASE_URL as a `set -a; . FILE` shell would set it from a simple
    `NAME=value` file; None when the file cannot be read or does not set it."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_ENV_FILE_BYTES:
            return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    value = None
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if words and words[0] == "export":
            words = words[1:]
        for word in words:
            name, equals, rest = word.partition("=")
            if equals and name == ENV_FILE_DATABASE_URL:
                value = rest
    return value or None


def recorded_target(options: Mapping[str, str]) -> ScheduleTarget:
    """The target of a schedule from the install options it records: --config, and the
    database of --database-url, else of the --env-file the lines source."""
    config = options.get("--config")
    database = options.get("--database-url")
    if database is None and "--env-file" in options:
        database = env_file_database_url(Path(options["--env-file"]))
    return ScheduleTarget(
        config=_same_file(config) if config else None,
        database=comparable_url(database) if database else None,
    )


def running_target(config_file: Path | None, url: str, url_source: UrlSource) -> ScheduleTarget:
    """The target of this command: its config file, and its database URL unless that
    comes from the config file or is the embedded default (which a schedule running
    the same --config reaches too)."""
    from saathii_ops.settings import UrlSource  # pydantic: not at `cron`'s import

    passed = url_source not in (UrlSource.CONFIG_FILE, UrlSource.EMBEDDED)
    return ScheduleTarget(
        config=_same_file(config_file) if config_file else None,
        database=comparable_url(url) if passed else None,
    )


def same_target(installed: ScheduleTarget, wanted: ScheduleTarget) -> bool:
    return installed == wanted
