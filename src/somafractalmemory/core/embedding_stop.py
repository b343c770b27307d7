"""Abandoning an embedding under way, from another thread."""

from __future__ import annotations

import threading
from collections.abc import Callable


class EmbeddingStopped(Exception):
    """An embedding abandoned through its :class:`StopSignal`."""


class StopSignal:
    """Set from any thread to abandon an embedding under way (see ``Embedder.embed``).

    Why: a search looks its query's vector up in Redis while the query is embedded, instead
    of before; a cache hit then stops the embedding it makes useless. The ONNX backend stops
    at the next node of its graph; the torch backend only if the signal is set before it
    starts.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set = False
        self._callbacks: list[Callable[[], None]] = []

    def set(self) -> None:
        """Stop the embedding (idempotent)."""
        with self._lock:
            self._set = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def is_set(self) -> bool:
        """Whether :meth:`set` was called."""
        with self._lock:
            return self._set

    def when_set(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the signal is set: now, if it already is."""
        with self._lock:
            if not self._set:
                self._callbacks.append(callback)
                return
        callback()
