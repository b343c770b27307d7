"""The webhook dispatcher: one background thread per process (``sfm-webhooks``) that claims
due webhooks and delivers them on a small pool of workers, ``SOMA_WEBHOOK_CONCURRENCY`` at a
time, so one slow or dead endpoint holds up one worker and never the others (nor the writes:
they never wait on this thread). Claims are leases in PostgreSQL, so any number of replicas
may run a dispatcher; a process killed mid-delivery leaves its lease to expire and another
dispatcher (or itself, restarted) delivers the same changes again.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import httpx

from somafractalmemory.core.webhooks import Outcome, WebhookService, create_http_client
from somafractalmemory.errors import SFMError
from somafractalmemory.models import Webhook

logger = logging.getLogger(__name__)


class WebhookDispatcher:
    """Delivers every due webhook's next changes until stopped."""

    def __init__(self, service: WebhookService) -> None:
        self.service = service
        self.concurrency = service.settings.webhook_concurrency
        self.interval = service.settings.webhook_interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sfm-webhooks", daemon=True)

    def start(self) -> None:
        """Start the thread (not when ``SOMA_WEBHOOK_CONCURRENCY`` is 0)."""
        if self.concurrency > 0:
            self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish (deliveries under way finish first) and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(
                timeout=self.interval + self.service.settings.webhook_timeout_seconds + 10
            )

    def _claim(self, limit: int) -> list[Webhook]:
        try:
            return self.service.claim(limit)
        except SFMError as exc:  # PostgreSQL down: the webhooks wait in their table
            logger.warning("webhook deliveries postponed: %s", exc.detail)
            return []

    def _deliver(self, webhook: Webhook, http: httpx.Client) -> Outcome | None:
        try:
            outcome = self.service.deliver(webhook, http)
        except SFMError as exc:  # its lease expires and it is delivered again
            logger.warning("webhook %s: delivery not recorded: %s", webhook.id, exc.detail)
            return None
        if outcome.error is not None:
            logger.info("webhook %s: delivery failed: %s", webhook.id, outcome.error)
        return outcome

    def _run(self) -> None:
        running: set[Future[Outcome | None]] = set()
        with (
            create_http_client(self.service.settings) as http,
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="sfm-webhook") as pool,
        ):
            while not self._stop.is_set():
                free = self.concurrency - len(running)
                claimed = self._claim(free) if free > 0 else []
                running |= {pool.submit(self._deliver, w, http) for w in claimed}
                if not running:
                    self._stop.wait(self.interval)
                    continue
                # Claim again as soon as a worker is free (a webhook with more changes is due
                # again at once), or after the interval when every worker is busy or idle.
                done, running = wait(running, timeout=self.interval, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()  # _deliver returns what it did; anything else is a bug
            wait(running)
