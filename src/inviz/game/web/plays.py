"""The answered plays of every cluster map, mirrored in the SQLite writer's memory.

Dealing a round picks one of the least-played maps (:func:`inviz.game.web.policy.choose_map`).
The database keeps the counts (``map_plays``, updated in each answer's transaction); scanning
the table for every round would cost the one writer milliseconds, so the writer keeps a copy:
read from the database, advanced after each answer this process commits, and read again
whenever the table may have changed otherwise:

- another connection committed (SQLite's ``PRAGMA data_version`` on the writer connection
  changes: another server process on the same file, an ``sqlite3`` shell, …);
- this process wrote outside a request (:meth:`inviz.game.web.db.Database.write` advances
  :attr:`~inviz.game.web.db.Database.generation`);
- the writer connection is a new one, or a commit failed.

Other databases have no such cheap check: their rounds are dealt by one SQL statement
(:meth:`inviz.game.web.rounds.RoundService.least_played`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Connection

from inviz.game.web.db import MapPlays

_ALL_PLAYS = select(MapPlays.__table__.c.cluster_id, MapPlays.__table__.c.plays)


class PlaysMirror:
    """Answered plays per map (outside screening) as committed, kept in memory.

    Parameters
    ----------
    cluster_ids : sequence of int, length N
        The maps, in the order of :attr:`inviz.game.web.content.GameContent.maps`.
    generation : callable
        Returns the database's write generation (changes when the process writes outside a request).
    """

    def __init__(self, cluster_ids: Iterable[int], generation: Callable[[], int]):
        self.position = {int(c): i for i, c in enumerate(cluster_ids)}
        self._generation = generation
        self._plays: np.ndarray | None = None
        self._stamp: tuple[Any, int, int] | None = None
        self._lock = threading.Lock()

    def plays(self, con: Connection) -> np.ndarray:
        """Return the plays of every map, shape (N,), reading them again when they may be stale.

        Call it in the writer's transaction before that transaction writes (SQLite's
        ``BEGIN IMMEDIATE``: nobody else writes until it ends).

        Parameters
        ----------
        con : Connection
            The writer's connection, in its transaction.

        Returns
        -------
        ndarray of int, shape (N,)
            A copy.
        """
        raw = con.connection.dbapi_connection
        stamp = (raw, int(con.exec_driver_sql("PRAGMA data_version").scalar()), self._generation())
        with self._lock:
            if self._plays is None or self._stamp is None or not _same(self._stamp, stamp):
                plays = np.zeros(len(self.position), dtype=np.int64)
                for cid, n in con.execute(_ALL_PLAYS):
                    pos = self.position.get(int(cid))
                    if pos is not None:
                        plays[pos] = int(n)
                self._plays, self._stamp = plays, stamp
            return self._plays.copy()

    def played(self, cluster_ids: Iterable[int]) -> None:
        """Count answers this process has just committed (one play per cluster id)."""
        with self._lock:
            if self._plays is not None:
                for cid in cluster_ids:
                    self._plays[self.position[int(cid)]] += 1

    def forget(self) -> None:
        """Drop the copy (read again at the next use): a commit failed, or its effect is unknown."""
        with self._lock:
            self._plays = self._stamp = None


def _same(a: tuple[Any, int, int], b: tuple[Any, int, int]) -> bool:
    return a[0] is b[0] and a[1:] == b[1:]
