"""The embedding model as an ONNX graph, run by onnxruntime: what the server needs of it.

The export itself is made apart from the server, by ``somafractalmemory embedder build``
(:mod:`somafractalmemory.core.onnx_export`), in an environment that has torch and the source
model (``make install`` makes a throwaway one; the Docker image a build stage). The server's
own environment has onnxruntime and tokenizers only: no torch, no sentence-transformers.

An export lives in ``<SOMA_EMBEDDING_ONNX_DIR>/<model>-<fingerprint>/``: the graph, the
tokenizer, ``meta.json`` and ``check_vectors.npy``, the vectors the source model itself gave
for :data:`CHECK_TEXTS` in the build. The fingerprint is a SHA-256 over the source model's
files: where those files are at hand (a model directory, or the model's package installed),
a changed model never silently runs on an old export. Where they are not (the server's light
environment), the export of that model name is the model. Either way :func:`load` embeds the
check texts again and refuses an export that no longer gives the model's vectors (largest
absolute difference :data:`MAX_ABS_DIFF`), e.g. under another onnxruntime than the build's.

Why: a query embedding is most of a vector search. On a 2-core machine the torch model takes
~11 ms for one short text, the ONNX graph ~3.5 ms (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from somafractalmemory.core.embedding_stop import EmbeddingStopped, StopSignal
from somafractalmemory.errors import EmbeddingModelError

ONNX_FILE = "model.onnx"
META_FILE = "meta.json"
TOKENIZER_FILE = "tokenizer.json"
CHECK_VECTORS_FILE = "check_vectors.npy"
# 2: TorchScript export with BERT fusions (1: dynamo export). The check vectors came later
# without a new format, so that an older version still reads a newer export; an export without
# them is refused by :func:`load` and made again by ``embedder build``.
FORMAT_VERSION = 2
MAX_ABS_DIFF = 1e-4
BATCH_SIZE = 64
# How to get what the export and the torch backend need (torch's CPU build first: a plain
# `pip install torch` pulls the CUDA build, gigabytes).
EXPORT_EXTRA = (
    "pip install torch --index-url https://download.pytorch.org/whl/cpu, "
    "then pip install 'somafractalmemory[export]'"
)

# Texts the export must embed like the source model: empty, padded, non-ASCII, one past the
# model's sequence length, and ordinary sentences of different lengths in one batch.
CHECK_TEXTS = (
    "",
    "   leading and trailing spaces   ",
    "I like green tea",
    "What did Caroline do at the LGBTQ support group last week?",
    "Zoë's café in Köln serves crème brûlée; 東京 is far away. 🙂",
    "memory " * 400,
    "A longer sentence about a trip to the mountains with friends, a lake, and a broken tent.",
)


@dataclass(frozen=True)
class ExportInfo:
    """Where an export is and what it was checked against."""

    path: Path
    meta: dict[str, Any]
    built: bool


def fingerprint(model_dir: Path) -> str:
    """SHA-256 over the model directory's files (relative names and contents, sorted)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(model_dir)).encode())
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def model_slug(model_name: str) -> str:
    """The model's name as the first part of its export's directory name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(model_name).name or "model").strip("_")


def export_path(onnx_dir: Path, model_name: str, model_dir: Path) -> Path:
    """The directory that holds (or will hold) the export of ``model_dir``."""
    return onnx_dir / f"{model_slug(model_name)}-{fingerprint(model_dir)[:16]}"


def exports_of(model_name: str, onnx_dir: Path) -> list[Path]:
    """The exports in ``onnx_dir`` made from the model called ``model_name``."""
    if not onnx_dir.is_dir():
        return []
    found = []
    for candidate in sorted(onnx_dir.glob(f"{model_slug(model_name)}-*")):
        meta_file = candidate / META_FILE
        if meta_file.is_file() and json.loads(meta_file.read_text()).get("model") == model_name:
            found.append(candidate)
    return found


def find_export(model_name: str, model_dir: Path | None, onnx_dir: Path) -> Path:
    """The export to run: that of ``model_dir``'s exact files when they are at hand, else the
    one export of ``model_name``; raises :class:`EmbeddingModelError` if there is none (or,
    without the model's files, more than one to choose from)."""
    build_hint = (
        "run `somafractalmemory embedder build` where torch and the model are installed "
        "(make install does, in .cache/onnx-build)"
    )
    if model_dir is not None:
        target = export_path(onnx_dir, model_name, model_dir)
        if not (target / META_FILE).is_file():
            raise EmbeddingModelError(
                f"no ONNX export of {model_name!r} in this directory (expected {target.name}); "
                f"{build_hint}, or set SOMA_EMBEDDING_BACKEND=torch",
                str(onnx_dir),
            )
        return target
    found = exports_of(model_name, onnx_dir)
    if not found:
        raise EmbeddingModelError(
            f"no ONNX export of {model_name!r} in this directory; {build_hint}", str(onnx_dir)
        )
    if len(found) > 1:
        raise EmbeddingModelError(
            f"{len(found)} ONNX exports of {model_name!r} here "
            f"({', '.join(p.name for p in found)}) and no model files to tell which is "
            "current; remove the old ones",
            str(onnx_dir),
        )
    return found[0]


def load(model_name: str, model_dir: Path | None, onnx_dir: Path, threads: int) -> OnnxEncoder:
    """The checked export of ``model_name`` (see :func:`find_export`), after it embedded the
    check texts as the model did; raises :class:`EmbeddingModelError` otherwise."""
    target = find_export(model_name, model_dir, onnx_dir)
    encoder = OnnxEncoder(target, _read_meta(target), threads)
    difference = check(encoder, target)
    if not difference <= MAX_ABS_DIFF:
        raise EmbeddingModelError(
            f"the ONNX export {target.name} gives vectors {difference:.2e} away from those the "
            f"model gave when it was built (at most {MAX_ABS_DIFF:.0e} allowed), here with "
            "this onnxruntime; run `somafractalmemory embedder build --force`",
            str(onnx_dir),
        )
    return encoder


def check(encoder: OnnxEncoder, target: Path) -> float:
    """Largest absolute difference between the export's vectors for :data:`CHECK_TEXTS`
    and the source model's, recorded in ``target`` by the build."""
    if not (target / CHECK_VECTORS_FILE).is_file():
        raise EmbeddingModelError(
            f"the ONNX export {target.name} has no {CHECK_VECTORS_FILE} (an older version "
            "made it); run `somafractalmemory embedder build --force`",
            str(target.parent),
        )
    expected = np.load(target / CHECK_VECTORS_FILE, allow_pickle=False)
    got = encoder.encode(list(CHECK_TEXTS))
    if expected.shape != got.shape:
        return float("inf")
    return float(np.abs(expected - got).max())


class OnnxEncoder:
    """Tokenises with the model's own fast tokenizer and runs the graph with onnxruntime.

    ``InferenceSession.run`` is thread-safe, so concurrent requests need no lock.
    """

    def __init__(self, path: Path, meta: dict[str, Any], threads: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # onnxruntime's worker threads otherwise busy-wait after each run, taking the cores
        # the rest of the request (and the other requests) need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            str(path / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(path / TOKENIZER_FILE))
        self._tokenizer.enable_truncation(int(meta["max_seq_length"]))
        self._tokenizer.enable_padding(
            pad_id=int(meta["pad_token_id"]), pad_token=meta["pad_token"]
        )
        self._lower = bool(meta.get("do_lower_case", False))
        self.dimension = int(meta["dimension"])

    def encode(self, texts: list[str], stop: StopSignal | None = None) -> npt.NDArray[np.float32]:
        """Unit-length vectors for ``texts``, in order; batches group texts of similar length.
        Raises :class:`EmbeddingStopped` once ``stop`` is set (at the graph's next node)."""
        import onnxruntime

        options = onnxruntime.RunOptions()
        if stop is not None:
            # onnxruntime checks ``terminate`` between nodes; it is made to be set by another
            # thread while the run is under way.
            stop.when_set(lambda: setattr(options, "terminate", True))
        cleaned = [t.strip().lower() if self._lower else t.strip() for t in texts]
        order = sorted(range(len(cleaned)), key=lambda i: len(cleaned[i]))
        result = np.empty((len(cleaned), self.dimension), dtype=np.float32)
        for start in range(0, len(order), BATCH_SIZE):
            chosen = order[start : start + BATCH_SIZE]
            try:
                result[chosen] = self._run([cleaned[i] for i in chosen], options)
            except onnxruntime.capi.onnxruntime_pybind11_state.Fail:
                if stop is not None and stop.is_set():
                    raise EmbeddingStopped from None
                raise
        return result

    def _run(self, texts: list[str], options: Any) -> npt.NDArray[np.float32]:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        (vectors,) = self._session.run(
            None, {k: v for k, v in feeds.items() if k in self._inputs}, options
        )
        return np.asarray(vectors, dtype=np.float32)


def _read_meta(target: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((target / META_FILE).read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise EmbeddingModelError(
            f"the ONNX export {target.name} has format {meta.get('format')!r}, this version "
            f"reads {FORMAT_VERSION}; run `somafractalmemory embedder build --force`",
            str(target.parent),
        )
    return meta
