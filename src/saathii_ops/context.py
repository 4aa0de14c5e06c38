"""The typed object the root callback puts in `ctx.obj`.

Everything expensive is built on first use, so `--help` touches no file and no
database, and a bad config value is reported only by commands that need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

from sqlalchemy.engine import URL, Engine

from saathii_ops.db import make_engine, parse_url
from saathii_ops.settings import Settings, config_path, load_settings, resolve_database_url


@dataclass
class AppContext:
    database_url_option: str | None = None
    config_option: Path | None = None
    now: datetime | None = None
    json_output: bool = False
    verbose: bool = False

    @cached_property
    def config_file(self) -> Path | None:
        return config_path(self.config_option)

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_file)

    @cached_property
    def url(self) -> URL:
        raw, _source = resolve_database_url(self.database_url_option, self.settings)
        return parse_url(raw)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.url)

    def dispose(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
