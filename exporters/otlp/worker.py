"""The export worker: a daemon thread that sends what the exporters queue, never the caller.

The queue is bounded: beyond ``max_pending`` items the oldest is dropped (and reported
to ``on_drop``). In a forked child the worker is reset to closed and empty: a child
never sends the parent's data.
"""

from __future__ import annotations

import collections
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ExportWorker(Generic[T]):
    """A daemon thread that sends queued items; the queue is bounded (oldest dropped)."""

    def __init__(self, name: str, send: Callable[[T], None], max_pending: int, on_drop: Callable[[T], None]) -> None:
        self._name = name
        self._send = send
        self._max_pending = max_pending
        self._on_drop = on_drop
        self._cond = threading.Condition()
        self._pending: collections.deque[T] = collections.deque()
        self._busy = False
        self._busy_since = 0.0
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, item: T) -> None:
        """Queue ``item`` (dropping the oldest beyond the bound) and return at once."""
        dropped = []
        with self._cond:
            if self._closed:
                dropped.append(item)
            else:
                while len(self._pending) >= self._max_pending:
                    dropped.append(self._pending.popleft())
                self._pending.append(item)
                self._ensure_thread()
                self._cond.notify_all()
        for old in dropped:
            self._on_drop(old)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                item = self._pending.popleft()
                self._busy = True
                self._busy_since = time.monotonic()
            try:
                self._send(item)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def stuck_for(self) -> float:
        """Seconds the export in flight has been running (0 when idle)."""
        with self._cond:
            return time.monotonic() - self._busy_since if self._busy else 0.0

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing is pending or being sent; False if ``timeout_s`` ran out."""
        deadline = time.monotonic() + max(timeout_s, 0.0)
        with self._cond:
            while self._pending or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout_s: float) -> bool:
        """Stop accepting items, give the worker ``timeout_s`` to finish, drop the rest."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        done = self.wait_idle(timeout_s)
        with self._cond:
            leftovers = list(self._pending)
            self._pending.clear()
        for item in leftovers:
            self._on_drop(item)
        return done

    def reset_after_fork(self) -> None:
        """In a forked child: fresh lock, no thread, nothing pending, closed."""
        self._cond = threading.Condition()
        self._pending = collections.deque()
        self._busy = False
        self._busy_since = 0.0
        self._closed = True
        self._thread = None


def call_in_forked_child(method: Callable[[], None]) -> None:
    """Call the bound ``method`` in every forked child, for as long as its object lives."""
    if not hasattr(os, "register_at_fork"):
        return
    ref = weakref.WeakMethod(method)

    def _after_in_child() -> None:
        alive = ref()
        if alive is not None:
            alive()

    os.register_at_fork(after_in_child=_after_in_child)
