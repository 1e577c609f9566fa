"""Exactly one Celery beat schedules, however many are started.

Every beat process asks PostgreSQL for one session-level advisory lock on a connection of its own. The holder
schedules; the others wait in standby and ask again every ``BEAT_LOCK_POLL_SECONDS``. PostgreSQL releases the lock
when the holder's session ends — the process exits or is killed (its socket closes at once) or its machine vanishes
(the server-side TCP keepalives set below notice within about half a minute) — and the next standby to ask takes
over. The holder checks its connection on every tick and stops scheduling as soon as the connection is gone, so two
beats overlap at most for one tick; every scheduled task is idempotent besides.

The schedule file (``celerybeat-schedule``) is opened only once the lock is held: a standby on the same machine
does not touch the holder's file.

On SQLite (the embedded default: one process runs the worker with embedded beat) there is nothing to lock against
and the scheduler behaves as Celery's own.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.beat import PersistentScheduler
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

logger = logging.getLogger("rollgate.beat")

LOCK_NAME = "rollgate.celery.beat"
# The server notices a vanished holder after idle + interval × count seconds and ends its session (and the lock).
SESSION_KEEPALIVES = {"tcp_keepalives_idle": 10, "tcp_keepalives_interval": 5, "tcp_keepalives_count": 3}


class BeatLock:
    """A PostgreSQL session advisory lock held on a dedicated connection (never Django's shared one, which a
    ``close_old_connections`` would close and so release the lock)."""

    def __init__(self, *, alias: str = DEFAULT_DB_ALIAS, name: str = LOCK_NAME) -> None:
        self.alias = alias
        self.name = name
        self._connection: BaseDatabaseWrapper | None = None
        self.held = False

    def try_acquire(self) -> bool:
        """True if this process holds the lock now (it may have held it already)."""
        if self.held and self.still_held():
            return True
        self._close()
        try:
            self._connection = connections.create_connection(self.alias)
            with self._connection.cursor() as cursor:
                for parameter, seconds in SESSION_KEEPALIVES.items():
                    cursor.execute("SELECT set_config(%s, %s, false)", [parameter, str(seconds)])
                cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [self.name])
                row = cursor.fetchone()
        except Exception:  # the database is down or restarting: not held; a later tick asks again
            logger.warning("Beat lock: could not ask the database for the lock", exc_info=True)
            self._close()
            return False
        self.held = bool(row and row[0])
        if not self.held:
            self._close()  # a standby keeps no idle connection open between attempts
        return self.held

    def still_held(self) -> bool:
        """The session that took the lock is still alive (PostgreSQL keeps the lock exactly as long)."""
        if not self.held or self._connection is None:
            return False
        if not self._connection.is_usable():
            logger.error("Beat lock: the connection holding the lock is gone; this beat stops scheduling")
            self.held = False
            self._close()
        return self.held

    def release(self) -> None:
        self.held = False
        self._close()  # ending the session releases the lock

    def _close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # closing a dead connection may raise; it is closed either way
                logger.debug("Beat lock: closing the lock connection failed", exc_info=True)
            self._connection = None


def lock_applies() -> bool:
    return connections[DEFAULT_DB_ALIAS].vendor == "postgresql"


class LockedPersistentScheduler(PersistentScheduler):
    """Celery's file-backed scheduler, scheduling only while it holds the beat lock.

    Nothing blocks: a standby's ``tick`` asks for the lock and, refused, returns the poll interval, so beat's own
    loop (and its SIGTERM handling) runs as usual. The schedule file is open only while the lock is held.
    """

    _store: Any = None  # the open shelve (Celery's attribute), None while standing by

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.beat_lock = BeatLock() if lock_applies() else None
        self.poll_seconds = float(settings.BEAT_LOCK_POLL_SECONDS)
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        if self.beat_lock is None:
            super().setup_schedule()
        elif self.beat_lock.try_acquire():
            logger.info("Beat lock acquired: this beat schedules")
            super().setup_schedule()
        else:
            logger.info("Beat lock held by another beat: standing by, asking again every %ss", self.poll_seconds)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if self.beat_lock is not None and not self.beat_lock.still_held():
            if self._store is not None:
                self._close_schedule()  # lost the lock: let the next holder open the file alone
            if not self.beat_lock.try_acquire():
                return self.poll_seconds
            logger.info("Beat lock acquired: this beat takes over the schedule")
            super().setup_schedule()
        return float(super().tick(*args, **kwargs))

    def _close_schedule(self) -> None:
        assert self._store is not None
        try:
            self._store.close()  # writes what the shelve holds; then a new holder may open the file
        finally:
            self._store = None
            self._heap = None  # rebuilt from the file when the lock is held again

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.beat_lock is not None:
                self.beat_lock.release()
