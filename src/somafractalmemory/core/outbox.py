"""The outbox drainer: a background thread that settles writes whose Milvus side was never
confirmed (a crash, a Milvus outage, a failed commit), and refreshes the outbox and drift
gauges. Entries younger than the grace period are left to the request that made them."""

from __future__ import annotations

import logging
import threading

from somafractalmemory.core.service import MemoryService
from somafractalmemory.errors import SFMError
from somafractalmemory.observability.metrics import OUTBOX_PENDING, RECONCILE_DRIFT

logger = logging.getLogger(__name__)


class OutboxDrainer:
    """Runs :meth:`MemoryService.drain_outbox` every ``interval`` seconds until stopped."""

    def __init__(self, service: MemoryService, interval: float, grace: float) -> None:
        self.service = service
        self.interval = interval
        self.grace = grace
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sfm-outbox", daemon=True)

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish and wait for it."""
        self._stop.set()
        self._thread.join(timeout=self.interval + 10)

    def run_once(self) -> int:
        """Drain what is due, refresh the gauges; returns how many entries were settled.

        A store outage is logged and left for the next round: the entries stay in the outbox.
        """
        settled = 0
        try:
            while drained := self.service.drain_outbox(self.grace):
                settled += drained
            OUTBOX_PENDING.set(self.service.postgres.outbox_size())
            drift = self.service.postgres.last_reconcile_drift()
            if drift is not None:
                RECONCILE_DRIFT.set(drift)
        except SFMError as exc:
            logger.warning("outbox drain postponed: %s", exc.detail)
        return settled

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()
