"""The typed object the root callback puts in `ctx.obj`: the global options, resolved once
and never changed (a command that must read another configuration makes a new context,
`dataclasses.replace`, before anything is read).

Everything expensive is built on first use, so `--help` touches no file and no
database, and a bad config value is reported only by commands that need it; the
libraries behind it (pydantic, SQLAlchemy) are imported on first use too.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

    from saathii_ops.settings import Settings, UrlSource


@dataclass(frozen=True)
class AppContext:
    database_url_option: str | None = None
    config_option: Path | None = None
    now: datetime | None = None
    json_output: bool = False
    verbose: bool = False
    # the database a command chose itself, whatever the options say (the demo's embedded one)
    chosen_database: tuple[str, UrlSource] | None = None

    @cached_property
    def config_file(self) -> Path | None:
        from saathii_ops.settings import config_path

        return config_path(self.config_option)

    @cached_property
    def settings(self) -> Settings:
        from saathii_ops.settings import (
            read_config_file,
            secret_readable_by_others,
            settings_from,
        )

        if self.config_file is None:
            return settings_from({})
        file_values = read_config_file(self.config_file)
        settings = settings_from(file_values)
        warning = secret_readable_by_others(self.config_file, file_values)
        if warning:
            sys.stderr.write(warning + "\n")
        return settings

    @cached_property
    def _database_url(self) -> tuple[str, UrlSource]:
        from saathii_ops.settings import resolve_database_url

        if self.chosen_database is not None:
            return self.chosen_database
        return resolve_database_url(self.database_url_option, self.settings)

    @property
    def database_url_and_source(self) -> tuple[str, UrlSource]:
        """The URL as given (with its password) and where it came from (SPEC §2)."""
        return self._database_url

    @cached_property
    def url(self) -> URL:
        from saathii_ops.db.engine import parse_url

        return parse_url(self._database_url[0])

    @property
    def database_source(self) -> str:
        """Where the URL came from, in a few words (SPEC §2: every job's output says)."""
        from saathii_ops.settings import UrlSource

        source = self._database_url[1]
        if source == UrlSource.CONFIG_FILE:
            return f"config file {self.config_file}"
        if source == UrlSource.APP_ENVIRONMENT:
            return "DATABASE_URL (the app's)"
        return source

    @property
    def database(self) -> str:
        """The one line naming the database: its URL without password, and its source."""
        from saathii_ops.db.engine import display_url

        return f"{display_url(self.url)} (from {self.database_source})"

    @cached_property
    def engine(self) -> Engine:
        from saathii_ops.db.engine import make_engine

        return make_engine(self.url)

    def dispose(self) -> None:
        if "engine" in self.__dict__:  # built (cached_property keeps it there)
            self.engine.dispose()
