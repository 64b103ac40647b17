"""When the supervisor starts a dead or hung worker again (serve/workers.py): at once after
it served a while; after a delay that doubles with each failure at its start; and never
after MAX_FAILURES failures at start in a row, when the whole service stops with a message
(a worker that cannot start will not start on the tenth try either). Pure: the supervisor
tells it when each worker died and how long it had lived."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

BOOT_S: Final = 30.0  # a worker that dies sooner than this failed at its start
MAX_FAILURES: Final = 5  # failures at start in a row before the service stops
FIRST_DELAY_S: Final = 0.5
MAX_DELAY_S: Final = 8.0
HUNG_S: Final = 30.0  # a serving worker silent this long is hung (serve --worker-timeout)


@dataclass
class Restarts:
    """Each worker's failures at start in a row."""

    failures: dict[int, int] = field(default_factory=dict)

    def died(self, worker: int, lived_s: float) -> float | None:
        """Seconds to wait before starting the worker again, or None: stop the service."""
        if lived_s >= BOOT_S:
            self.failures[worker] = 0
            return 0.0
        failed = self.failures.get(worker, 0) + 1
        self.failures[worker] = failed
        if failed >= MAX_FAILURES:
            return None
        return float(min(FIRST_DELAY_S * 2.0 ** (failed - 1), MAX_DELAY_S))


def hung(started: float, beat: float | None, now: float, limit_s: float = HUNG_S) -> bool:
    """Whether a worker started at `started` (seconds since the epoch) whose last heartbeat was at
    `beat` (None: none since it started: still starting) has been silent over `limit_s`."""
    return beat is not None and beat >= started and now - beat > limit_s
