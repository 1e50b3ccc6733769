"""How many threads llama.cpp should use right now: the physical cores other programs leave free.

llama.cpp's threads spin while they wait for each other. On a laptop where another program keeps
one core busy, asking for every core makes one of our threads share that core, and every step
then waits for it: a 2-core machine with one busy core was measured 10x slower with 2 threads
than with 1. So before each request the CPU time *other* processes used since the last look is
measured (system busy time minus this process's own CPU time, over the wall time between the
two looks) and the thread count is the physical cores minus the cores they kept busy, at least 1.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

MIN_WINDOW_S = 0.05  # a shorter window between two looks says nothing about the load
BUSY_THRESHOLD = 0.6  # a core used 60% by others counts as taken


def physical_cores() -> int:
    """Physical cores (llama.cpp is slower with hyper-threads), at least 1."""
    import psutil

    return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)


@dataclass
class _Look:
    wall: float
    system_busy: float
    own: float


def _look() -> _Look:
    import psutil

    times = psutil.cpu_times()
    busy = sum(
        getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal")
    )
    own = psutil.Process().cpu_times()
    return _Look(time.monotonic(), busy, own.user + own.system + own.children_user)


class ThreadPlanner:
    """Remembers the last look at the CPU and turns the load since then into a thread count."""

    def __init__(self, cores: int | None = None) -> None:
        self.cores = cores or physical_cores()
        self._last: _Look | None = None

    def look(self) -> None:
        """Start a measuring window now (e.g. when a model starts loading)."""
        self._last = _look()

    def others_busy_cores(self) -> float:
        """Cores' worth of CPU time other processes used since the last look.

        Never waits: a window of a few milliseconds says nothing, so then the answer is 0
        (assume a quiet machine) and the window grows until the next decode; an old window is
        an average over its whole length, which is still the best evidence there is.
        """
        now = _look()
        last = self._last
        if last is None or now.wall - last.wall < MIN_WINDOW_S:
            if last is None:
                self._last = now
            return 0.0
        self._last = now
        elapsed = now.wall - last.wall
        others = (now.system_busy - last.system_busy) - (now.own - last.own)
        return max(0.0, others / elapsed)

    def threads(self) -> int:
        """Physical cores minus the ones other processes keep busy, at least 1."""
        busy = self.others_busy_cores()
        taken = int(busy + (1.0 - BUSY_THRESHOLD))  # round up from 60% of a core
        return max(1, min(self.cores, self.cores - taken))
