"""Loops that a waiting thread can join (docs/method.md §1, run settings: the CPU overlap).

The extraction clusters one batch in a background thread while the main thread runs the next
batch through the network (:class:`inviz.fmaps.explain.Explainer`). After the last batch the main
thread has nothing left to do but wait, and the background thread would finish that batch's
analysis on one core. :class:`SharedLoop` lets the waiting thread take part:

- the owner runs a loop with :meth:`SharedLoop.map` (``fn(0) … fn(n - 1)``), publishing it;
- a thread that would otherwise wait calls :meth:`SharedLoop.help` and takes items of the
  published loops from the same counter until a condition holds (the owner's work is done).

Each item is computed by one thread, on its own, and stored by its index, so the results do not
depend on which thread computed which item or on how many helped. An exception in an item is
raised by :meth:`SharedLoop.map` in the owner thread (the one of the lowest index).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: seconds between checks of the helper's stop condition when nobody wakes it
_POLL = 0.05


class _Loop(Generic[T]):
    """One published loop: ``fn(i)`` for ``i`` in ``range(n)``, items handed out by a counter."""

    def __init__(self, fn: Callable[[int], T], n: int) -> None:
        self.fn = fn
        self.n = n
        self._lock = threading.Lock()
        self._next = 0
        self._left = n
        self._finished = threading.Event()
        if n == 0:
            self._finished.set()
        self.results: list[T | None] = [None] * n
        self.errors: dict[int, BaseException] = {}

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self.n:
                return None
            self._next += 1
            return self._next - 1

    def exhausted(self) -> bool:
        """Whether every item has been taken (some may still be running)."""
        with self._lock:
            return self._next >= self.n

    def work(self) -> int:
        """Compute items until none is left to take; return how many this thread computed."""
        done = 0
        while (i := self._take()) is not None:
            try:
                self.results[i] = self.fn(i)
            except BaseException as err:  # noqa: BLE001 (re-raised by the owner)
                self.errors[i] = err
            done += 1
            with self._lock:
                self._left -= 1
                if self._left == 0:
                    self._finished.set()
        return done

    def wait(self) -> None:
        """Block until every item is computed (by whichever thread took it)."""
        self._finished.wait()


class SharedLoop:
    """Run loops in one thread that other, otherwise waiting, threads can join.

    Examples
    --------
    >>> shared = SharedLoop()
    >>> shared.map(lambda i: i * i, 4)
    [0, 1, 4, 9]
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._loop: _Loop | None = None
        self.helped = 0  #: items computed by helpers so far

    def map(self, fn: Callable[[int], T], n: int) -> list[T]:
        """Return ``[fn(0), …, fn(n - 1)]``, computed here and by any thread in :meth:`help`.

        Parameters
        ----------
        fn : the loop body, called once per index; must not depend on which thread calls it.
        n : number of items.

        Returns
        -------
        list of n results, in index order.
        """
        loop: _Loop[T] = _Loop(fn, n)
        with self._cond:
            self._loop = loop
            self._cond.notify_all()
        try:
            loop.work()
        finally:
            with self._cond:
                self._loop = None
        loop.wait()  # items still running in a helper
        if loop.errors:
            raise loop.errors[min(loop.errors)]
        return loop.results  # type: ignore[return-value]

    def wake(self) -> None:
        """Wake the helpers so that they check their stop condition now."""
        with self._cond:
            self._cond.notify_all()

    def help(self, stop: Callable[[], bool]) -> None:
        """Compute items of published loops until ``stop()`` is true.

        Parameters
        ----------
        stop : the condition to return on (checked when woken by :meth:`map` or :meth:`wake`,
            and every few milliseconds).
        """
        while True:
            with self._cond:
                while not stop() and (self._loop is None or self._loop.exhausted()):
                    self._cond.wait(_POLL)
                if stop():
                    return
                loop = self._loop
            done = loop.work()
            with self._cond:
                self.helped += done
