"""The maintenance thread: one background thread per process that settles outbox entries
(writes whose Milvus side was never confirmed: a crash, a Milvus outage, a failed commit) for
memories and items, sweeps expired items and (with ``SOMA_HISTORY_RETENTION_DAYS``) old
versions, and refreshes the outbox and drift gauges.

Outbox entries younger than the grace period are left to the request that made them. The
sweep runs on its own, longer interval (``SOMA_ITEMS_SWEEP_INTERVAL_SECONDS``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from somafractalmemory.core.history import History
from somafractalmemory.core.items import ItemService
from somafractalmemory.core.service import MemoryService
from somafractalmemory.errors import SFMError
from somafractalmemory.observability.metrics import OUTBOX_PENDING, RECONCILE_DRIFT

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Round:
    """What one round did."""

    settled: int  # outbox entries brought in line (memories and items)
    swept: int  # expired items deleted
    pruned: int = 0  # versions past the history retention deleted


class Maintainer:
    """Drains both outboxes every ``interval`` seconds and sweeps expired items every
    ``sweep_interval`` seconds, until stopped."""

    def __init__(
        self,
        memories: MemoryService,
        items: ItemService,
        interval: float,
        sweep_interval: float,
        grace: float,
        history: History | None = None,
        history_retention_days: float | None = None,
    ) -> None:
        self.memories = memories
        self.items = items
        self.interval = min(interval, sweep_interval)
        self.sweep_interval = sweep_interval
        self.grace = grace
        self.history = history
        self.history_retention_days = history_retention_days
        self._next_sweep = time.monotonic() + sweep_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sfm-maintenance", daemon=True)

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish and wait for it."""
        self._stop.set()
        self._thread.join(timeout=self.interval + 10)

    def run_once(self, sweep: bool = True) -> Round:
        """Drain what is due, sweep when ``sweep``, refresh the gauges.

        A store outage is logged and left for the next round: the entries stay in the outbox,
        the expired items in their table.
        """
        settled = swept = pruned = 0
        try:
            while drained := self.memories.drain_outbox(self.grace):
                settled += drained
            while drained := self.items.drain_outbox(self.grace):
                settled += drained
            if sweep:
                while (batch := self.items.sweep_expired()) > 0:
                    swept += batch
                if self.history is not None and self.history_retention_days is not None:
                    while (batch := self.history.sweep(self.history_retention_days)) > 0:
                        pruned += batch
            OUTBOX_PENDING.set(self.memories.postgres.outbox_size())
            drift = self.memories.postgres.last_reconcile_drift()
            if drift is not None:
                RECONCILE_DRIFT.set(drift)
        except SFMError as exc:
            logger.warning("maintenance postponed: %s", exc.detail)
        return Round(settled, swept, pruned)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            sweep = now >= self._next_sweep
            if sweep:
                self._next_sweep = now + self.sweep_interval
            self.run_once(sweep)
