"""Micro-batching of single-text embeddings (query vectors), by group commit.

Under concurrency the query embedding is a search's largest CPU cost, and onnxruntime embeds
sixteen short texts in one call for much less than sixteen times one text's cost (one pass
over the graph, one set of thread hand-offs). So concurrent single-text embeddings are
gathered into one call, the way a database groups concurrent commits:

- a text arriving while no embedding of this batcher is under way is embedded at once, alone:
  a lone search waits for nothing (no timer, no window to sit out);
- a text arriving while one is under way waits for it to end; the first waiter then embeds
  every text that arrived meanwhile (up to :data:`MAX_BATCH`) in one call, and the others take
  their vectors from it.

The window is therefore the duration of the call under way (a few milliseconds for a query),
bounded by it, and nothing waits for a timer. A waiter whose stop signal is set (its vector
came from the cache) leaves the queue before it is embedded, or stops waiting when another
request's call already took it in (its vector is then computed and dropped). A batch's
error reaches every request of that batch.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from somafractalmemory.core.embedding_stop import EmbeddingStopped, StopSignal

MAX_BATCH = 32
# How often a waiter looks at its stop signal (seconds): only bounds how late a cache hit
# frees a waiting request; results wake waiters at once.
_STOP_POLL = 0.005

Encode = Callable[[list[str], StopSignal | None], npt.NDArray[np.float32]]


@dataclass(eq=False)
class _Waiter:
    text: str
    done: bool = False
    vector: list[float] = field(default_factory=list)
    error: BaseException | None = None
    queued: bool = False  # in the queue; False once a leader took it into its batch


class GroupBatcher:
    """Embeds single texts, gathering those that arrive while a call is under way."""

    def __init__(self, encode: Encode, max_batch: int = MAX_BATCH) -> None:
        self._encode = encode
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: deque[_Waiter] = deque()
        self._busy = False
        self.batched = 0  # texts embedded in calls of more than one text (for the tests)

    def embed_one(self, text: str, stop: StopSignal | None = None) -> list[float]:
        """The vector of ``text``; raises :class:`EmbeddingStopped` if ``stop`` is set while
        it waits for another call or, alone, while its own call is under way."""
        me = _Waiter(text)
        with self._cond:
            if not self._busy:
                self._busy = True
                batch = [me]
            else:
                me.queued = True
                self._queue.append(me)
                batch = self._wait_or_lead(me, stop)
        if batch:
            # Alone: the caller's stop signal may abandon the call; in a batch, others need it.
            self._run(batch, stop if len(batch) == 1 and batch[0] is me else None)
        if me.error is not None:
            raise me.error
        return me.vector

    def _wait_or_lead(self, me: _Waiter, stop: StopSignal | None) -> list[_Waiter]:
        """Called holding the lock. Waits until ``me`` has its vector (returns []) or no call
        is under way (returns the next batch, ``me`` first, which the caller then runs)."""
        while True:
            if me.done:
                return []
            if not self._busy:
                self._busy = True
                self._queue.remove(me)
                me.queued = False
                batch = [me]
                while self._queue and len(batch) < self._max_batch:
                    taken = self._queue.popleft()
                    taken.queued = False
                    batch.append(taken)
                return batch
            if stop is not None and stop.is_set():
                # Taken into another leader's batch meanwhile: that call still embeds the
                # text for the batch's other requests; this one just stops waiting for it.
                if me.queued:
                    self._queue.remove(me)
                    me.queued = False
                raise EmbeddingStopped
            self._cond.wait(_STOP_POLL if stop is not None else None)

    def _run(self, batch: list[_Waiter], stop: StopSignal | None) -> None:
        try:
            vectors = self._encode([w.text for w in batch], stop)
            for waiter, vector in zip(batch, vectors.tolist(), strict=True):
                waiter.vector = vector
        except Exception as exc:  # noqa: BLE001 - re-raised in every request of the batch
            for waiter in batch:
                waiter.error = exc
        finally:
            with self._cond:
                if len(batch) > 1:
                    self.batched += len(batch)
                for waiter in batch:
                    if not waiter.vector and waiter.error is None:  # interrupted (a signal)
                        waiter.error = RuntimeError("the embedding call was interrupted")
                    waiter.done = True
                self._busy = False
                self._cond.notify_all()
