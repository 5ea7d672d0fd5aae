"""For long-lived readers (the HTTP API): the Database of the server running now. After the embedded server
restarted, maybe on another port, the next read gets a fresh connection target; it never starts a server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from . import server
from .core import Database, url_string
from .readerrors import DatabaseUnavailable

T = TypeVar("T")


class ReconnectingDatabase:
    def __init__(self, db: Database) -> None:
        self.first = db  # the one the caller made (and may stop on exit)
        self._current = db
        self._lock = threading.Lock()

    @property
    def current(self) -> Database:
        return self._current

    def _retarget(self) -> bool:
        """Point at the embedded server's present port; False when none runs (or the URL is external)."""
        db = self._current
        data_dir = self.first.embedded.data_dir if self.first.embedded else None
        if data_dir is None:
            return True  # external URL: the pool reconnects by itself (pre-ping)
        running = server.read_postmaster(data_dir)
        if running is None:
            return False
        port = running[1]
        if db.app_url.port == port:
            return True
        with self._lock:
            fresh = Database(url=url_string(self.first.owner_url.set(port=port)),
                             app_url=url_string(self.first.app_url.set(port=port)))
            old, self._current = self._current, fresh
        if old is not self.first:
            old.close()
        return True

    def run(self, read: Callable[[Database], T]) -> T:
        """read(db); when the database is unavailable, retarget once and retry, else raise DatabaseUnavailable."""
        try:
            return read(self._current)
        except DatabaseUnavailable:
            if not self._retarget():
                raise
            return read(self._current)
