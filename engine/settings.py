"""Settings: defaults, then FASHIONREC_* environment variables, then CLI flags; a home's layout."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

DEFAULT_HOME: Final = Path(".fashionrec")
STORE_DIR: Final = "store"  # the embedded Qdrant Edge shard, under the home
EVENT_LOG: Final = "events.sqlite"  # the event log, under the home
SERVE_FILE: Final = "serve.json"  # {"url", "pid"} of the `fashionrec serve` holding the store
API_KEY_ENV: Final = "FASHIONREC_API_KEY"  # the service's key: its writes need it, clients send it
QDRANT_KEY_ENV: Final = "FASHIONREC_QDRANT_API_KEY"  # a secured Qdrant server's (or Cloud's)
EVENTS_URL_ENV: Final = "FASHIONREC_EVENTS_URL"  # postgresql://…: the event log on PostgreSQL


@dataclass(frozen=True)
class Settings:
    """Where the store lives (a local folder for Qdrant Edge, or a Qdrant server URL), where
    the event log lives (the home's SQLite file, or a PostgreSQL URL), and the taxonomy
    asked for (a built-in name or a TOML file; None: the one recorded)."""

    home: Path = DEFAULT_HOME
    qdrant_url: str | None = None
    taxonomy: str | None = None
    qdrant_api_key: str | None = field(default=None, repr=False)  # from the environment only
    events_url: str | None = field(default=None, repr=False)  # it may carry a password

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **flags: object | None) -> Settings:
        """Defaults, overridden by FASHIONREC_HOME / FASHIONREC_QDRANT_URL /
        FASHIONREC_TAXONOMY, then by flags; a Qdrant server's API key comes from
        FASHIONREC_QDRANT_API_KEY only (a key on the command line would show in `ps`), and
        the event log's URL from FASHIONREC_EVENTS_URL (it may hold a password too)."""
        env = os.environ if environ is None else environ
        settings = cls(
            home=Path(env.get("FASHIONREC_HOME") or DEFAULT_HOME),
            qdrant_url=env.get("FASHIONREC_QDRANT_URL") or None,
            taxonomy=env.get("FASHIONREC_TAXONOMY") or None,
            qdrant_api_key=env.get(QDRANT_KEY_ENV) or None,
            events_url=env.get(EVENTS_URL_ENV) or None,
        )
        given = {k: v for k, v in flags.items() if v is not None}
        if "home" in given:
            given["home"] = Path(str(given["home"]))
        return replace(settings, **given)  # type: ignore[arg-type]

    @property
    def store_path(self) -> Path:
        """The folder of the embedded store."""
        return self.home / STORE_DIR

    @property
    def event_log_path(self) -> Path:
        """The SQLite file of the event log (when no PostgreSQL URL is set)."""
        return self.home / EVENT_LOG

    @property
    def event_log(self) -> Path | str:
        """Where the event log is: the PostgreSQL URL set, else the home's SQLite file."""
        return self.events_url or self.event_log_path

    @property
    def has_event_log(self) -> bool:
        """Whether there is an event log to read (a URL always names one)."""
        return self.events_url is not None or self.event_log_path.is_file()

    @property
    def serve_file(self) -> Path:
        """The file a running `fashionrec serve` writes: its URL and pid."""
        return self.home / SERVE_FILE
