"""The item maintainer: a background thread that sweeps expired items and drains the item
outbox (the items' counterpart of :class:`~somafractalmemory.core.outbox.OutboxDrainer`)."""

from __future__ import annotations

import logging
import threading

from somafractalmemory.core.items import ItemService
from somafractalmemory.errors import SFMError

logger = logging.getLogger(__name__)


class ItemMaintainer:
    """Every ``interval`` seconds: delete expired items, settle old item outbox entries."""

    def __init__(self, service: ItemService, interval: float, grace: float) -> None:
        self.service = service
        self.interval = interval
        self.grace = grace
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sfm-items", daemon=True)

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish and wait for it."""
        self._stop.set()
        self._thread.join(timeout=self.interval + 10)

    def run_once(self) -> tuple[int, int]:
        """One round: (items swept, outbox entries settled). A store outage is logged and
        left for the next round."""
        swept = settled = 0
        try:
            while (batch := self.service.sweep_expired()) > 0:
                swept += batch
            while drained := self.service.drain_outbox(self.grace):
                settled += drained
        except SFMError as exc:
            logger.warning("item maintenance postponed: %s", exc.detail)
        return swept, settled

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()
