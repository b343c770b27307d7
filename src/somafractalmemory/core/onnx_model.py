"""The embedding model as an ONNX graph: exported locally, checked, then run by onnxruntime.

A sentence-transformers model (transformer, mean or CLS pooling, normalisation) is exported
once, on this machine, by ``somafractalmemory embedder build`` (``make install`` and the
Docker image run it). The export is accepted only if it gives the same vectors as the
sentence-transformers model on a fixed set of check texts (largest absolute difference
:data:`MAX_ABS_DIFF`). Nothing is downloaded: the source is the local model directory.

An export lives in ``<SOMA_EMBEDDING_ONNX_DIR>/<model>-<fingerprint>/``: the graph, the
tokenizer and ``meta.json``. The fingerprint is a SHA-256 over the source model's files, so a
changed model never silently runs on an old export: the server refuses to start instead.

Why: a query embedding is most of a vector search. On a 2-core machine the torch model takes
~11 ms for one short text, the ONNX graph ~3.5 ms (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
import warnings
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
FORMAT_VERSION = 2  # 2: TorchScript export with BERT fusions (1: dynamo export)
MAX_ABS_DIFF = 1e-4
BATCH_SIZE = 64

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


def export_path(onnx_dir: Path, model_name: str, model_dir: Path) -> Path:
    """The directory that holds (or will hold) the export of ``model_dir``."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(model_name).name or "model").strip("_")
    return onnx_dir / f"{slug}-{fingerprint(model_dir)[:16]}"


def build(model_name: str, model_dir: Path, onnx_dir: Path, force: bool = False) -> ExportInfo:
    """Export ``model_dir`` to ONNX under ``onnx_dir`` and check it; reuse a checked export.

    Raises :class:`EmbeddingModelError` if the model is not a transformer with mean or CLS
    pooling, or if the export's vectors differ from the source model's.
    """
    target = export_path(onnx_dir, model_name, model_dir)
    if not force and (target / META_FILE).is_file():
        existing: dict[str, Any] = json.loads((target / META_FILE).read_text())
        if existing.get("format") == FORMAT_VERSION:
            return ExportInfo(target, existing, built=False)

    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu")
    pooling = _pooling_mode(model)
    pad_token_id = model.tokenizer.pad_token_id
    if not isinstance(pad_token_id, int):
        raise EmbeddingModelError(f"the tokenizer of {model_name!r} has no padding token", "")
    onnx_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=onnx_dir))
    try:
        fused = _export_graph(model, pooling, work / ONNX_FILE)
        model.tokenizer.save_pretrained(str(work))
        meta: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "model": model_name,
            "source": str(model_dir),
            "source_sha256": fingerprint(model_dir),
            "dimension": _dimension(model),
            "max_seq_length": model.max_seq_length,
            "do_lower_case": bool(getattr(model[0], "do_lower_case", False)),
            "pooling": pooling,
            "fused_operators": fused,
            "pad_token": model.tokenizer.pad_token,
            "pad_token_id": pad_token_id,
            "torch": torch.__version__,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        expected = model.encode(list(CHECK_TEXTS), normalize_embeddings=True)
        got = OnnxEncoder(work, meta, threads=0).encode(list(CHECK_TEXTS))
        difference = float(np.abs(np.asarray(expected) - got).max())
        if not difference <= MAX_ABS_DIFF:
            raise EmbeddingModelError(
                f"the ONNX export of {model_name!r} differs from the model by {difference:.2e} "
                f"(at most {MAX_ABS_DIFF:.0e} allowed); use SOMA_EMBEDDING_BACKEND=torch",
                str(onnx_dir),
            )
        meta["check_max_abs_diff"] = difference
        (work / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        work.chmod(0o755)  # mkdtemp makes it private; the server may run as another user
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ExportInfo(target, meta, built=True)


def load(model_name: str, model_dir: Path, onnx_dir: Path, threads: int) -> OnnxEncoder:
    """The checked export of ``model_dir``; raises :class:`EmbeddingModelError` if absent."""
    target = export_path(onnx_dir, model_name, model_dir)
    if not (target / META_FILE).is_file():
        raise EmbeddingModelError(
            f"no ONNX export of {model_name!r} in this directory (expected {target.name}); "
            "run `somafractalmemory embedder build` (make install does), or set "
            "SOMA_EMBEDDING_BACKEND=torch",
            str(onnx_dir),
        )
    return OnnxEncoder(target, _read_meta(target), threads)


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


def _dimension(model: Any) -> int:
    get_dimension = getattr(model, "get_embedding_dimension", None)
    if get_dimension is None:  # sentence-transformers before 6
        get_dimension = model.get_sentence_embedding_dimension
    dimension = get_dimension()
    if not isinstance(dimension, int):
        raise EmbeddingModelError("the model does not report its dimension", "")
    return dimension


def _pooling_mode(model: Any) -> str:
    """ "mean" or "cls"; anything else (dense layers, other poolings) has no export here."""
    names = [type(module).__name__ for module in model]
    if names not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise EmbeddingModelError(
            f"only transformer + pooling (+ normalize) models are exported to ONNX, this one "
            f"is {' + '.join(names)}; use SOMA_EMBEDDING_BACKEND=torch",
            "",
        )
    mode = getattr(model[1], "pooling_mode", None)
    if not isinstance(mode, str):  # sentence-transformers before 6
        mode = model[1].get_pooling_mode_str()
    if mode not in ("mean", "cls"):
        raise EmbeddingModelError(
            f"pooling {mode!r} has no ONNX export here; use SOMA_EMBEDDING_BACKEND=torch", ""
        )
    return str(mode)


def _export_graph(model: Any, pooling: str, destination: Path) -> dict[str, int]:
    """Trace transformer + pooling + L2 normalisation into one graph with dynamic shapes,
    then fuse its BERT blocks with onnxruntime's transformer optimizer; returns the fused
    operators found (none for an architecture the optimizer does not know: the graph is
    then used as traced, and the vector check decides either way).

    Why the TorchScript exporter (``dynamo=False``) and eager attention: the optimizer
    recognises the attention, layer-norm and GELU patterns of that export, not those of the
    dynamo export with SDPA attention. Fused, the graph embeds a batch of 256 short texts
    about 1.5 times as fast here, and one query about 0.5 ms faster (benchmarks/RESULTS.md).
    """
    import torch

    transformer = model[0].auto_model.eval()
    set_attention = getattr(transformer, "set_attn_implementation", None)
    if set_attention is not None:
        set_attention("eager")

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            hidden = self.transformer(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
            ).last_hidden_state
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    sample = model.tokenizer(
        ["a sample sentence", "another, somewhat longer sample sentence"],
        padding=True,
        return_tensors="pt",
    )
    inputs = ("input_ids", "attention_mask", "token_type_ids")
    if "token_type_ids" not in sample:
        sample["token_type_ids"] = torch.zeros_like(sample["input_ids"])
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, whose graph the
        # optimizer cannot fuse (see the docstring); torch 2.13 still ships it.
        warnings.filterwarnings("ignore", "You are using the legacy", DeprecationWarning)
        torch.onnx.export(
            SentenceEmbedding(),
            tuple(sample[name] for name in inputs),
            str(destination),
            input_names=list(inputs),
            output_names=["sentence_embedding"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in inputs}
            | {"sentence_embedding": {0: "batch"}},
            dynamo=False,
            opset_version=17,
        )
    return _fuse(destination, transformer.config)


def _fuse(path: Path, config: Any) -> dict[str, int]:
    """Rewrite the graph at ``path`` with onnxruntime's BERT fusions; the fused counts."""
    from onnxruntime.transformers import optimizer

    heads = getattr(config, "num_attention_heads", None)
    hidden = getattr(config, "hidden_size", None)
    if not isinstance(heads, int) or not isinstance(hidden, int):
        return {}
    fused = optimizer.optimize_model(
        str(path), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0
    )
    fused.save_model_to_file(str(path))
    return {k: int(v) for k, v in fused.get_fused_operator_statistics().items() if v}
