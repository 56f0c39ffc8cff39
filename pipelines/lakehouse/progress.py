"""Progress inside a long stage: what Spark is doing right now, as one line a user can read.

A stage is one or more Spark jobs; :class:`SparkProgress` polls Spark's status tracker while
it runs and hands a line such as ``"812/3,000 tasks (27%), 14.2 tasks/s, about 2 min left"``
to a callback (the spinner of ``oncorank run``; a log line every ``log_every`` seconds where
there is no terminal, so a scheduled job's log shows it too). Tasks are what Spark splits the
work into: for ``ingest-variants`` one task reads a few whole VCF files or contigs, so the
count follows the files. Counted over the stages Spark is running at that moment; the rate is
the task completions per second since the poller first saw those stages.

Without a SparkContext (Spark Connect) there is nothing to poll and the line stays empty.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def progress_text(done: int, total: int, rate: float | None) -> str:
    """One line for ``done`` of ``total`` tasks at ``rate`` tasks per second.

    >>> progress_text(812, 3000, 14.2)
    '812/3,000 tasks (27%), 14.2 tasks/s, about 3 min left'
    >>> progress_text(5, 40, None)
    '5/40 tasks (12%)'
    """
    text = f"{done:,}/{total:,} tasks ({100 * done // max(total, 1)}%)"
    if rate:
        left = (total - done) / rate
        when = f"{left:.0f} s" if left < 90 else f"{left / 60:.0f} min"
        text += f", {rate:.1f} tasks/s, about {when} left"
    return text


class SparkProgress:
    """Context manager: while the block runs, call ``update(line)`` every ``interval`` seconds
    with the progress of Spark's active stages (module docstring)."""

    def __init__(self, spark, update: Callable[[str], None], interval: float = 1.0):
        try:
            self._tracker = spark.sparkContext.statusTracker()
        except Exception:  # Spark Connect: no SparkContext
            self._tracker = None
        self._update, self._interval = update, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[int, tuple[float, int]] = {}  # stage id -> (first seen, done then)

    def snapshot(self) -> tuple[int, int, float | None] | None:
        """``(done, total, rate)`` over the active stages, or None when none runs."""
        if self._tracker is None:
            return None
        done = total = 0
        now, started, done_then = time.monotonic(), None, 0
        for sid in self._tracker.getActiveStageIds():
            info = self._tracker.getStageInfo(sid)
            if info is None:
                continue
            done += info.numCompletedTasks
            total += info.numTasks
            first, at_first = self._seen.setdefault(sid, (now, info.numCompletedTasks))
            started = first if started is None else min(started, first)
            done_then += at_first
        if total == 0:
            return None
        elapsed = now - started if started is not None else 0.0
        rate = (done - done_then) / elapsed if elapsed > 2 and done > done_then else None
        return done, total, rate

    def _poll(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                snap = self.snapshot()
            except Exception:  # the tracker is advisory: never fail a stage over it
                continue
            if snap is not None:
                self._update(progress_text(*snap))

    def __enter__(self) -> SparkProgress:
        if self._tracker is not None:
            self._thread = threading.Thread(target=self._poll, name="oncorank-progress",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class Throttled:
    """Pass a line on at most every ``every`` seconds (for logs, not a live spinner)."""

    def __init__(self, emit: Callable[[str], None], every: float):
        self._emit, self._every, self._last = emit, every, 0.0

    def __call__(self, line: str) -> None:
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            self._emit(line)
