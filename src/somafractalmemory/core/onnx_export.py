"""The ONNX export of the embedding model: the build step, never imported by the server.

``somafractalmemory embedder build`` runs this where torch, sentence-transformers and the
source model are installed: ``make install`` makes a throwaway environment for it
(``.cache/onnx-build/venv``), the Docker image a build stage. The server's environment has
neither torch nor the model package; it runs what this writes (see
:mod:`somafractalmemory.core.onnx_model`).

A sentence-transformers model (transformer, mean or CLS pooling, normalisation) is exported and
accepted only if it gives the same vectors as the sentence-transformers model on
:data:`~somafractalmemory.core.onnx_model.CHECK_TEXTS` (largest absolute difference
:data:`~somafractalmemory.core.onnx_model.MAX_ABS_DIFF`); those vectors of the model's ship
with the export, so that the server checks the export again without the model. Nothing is
downloaded: the source is the local model directory.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from somafractalmemory.core.onnx_model import (
    CHECK_TEXTS,
    CHECK_VECTORS_FILE,
    EXPORT_EXTRA,
    FORMAT_VERSION,
    MAX_ABS_DIFF,
    META_FILE,
    ONNX_FILE,
    ExportInfo,
    OnnxEncoder,
    export_path,
    exports_of,
    fingerprint,
)
from somafractalmemory.errors import EmbeddingModelError


def build(model_name: str, model_dir: Path, onnx_dir: Path, force: bool = False) -> ExportInfo:
    """Export ``model_dir`` to ONNX under ``onnx_dir`` and check it; reuse a checked export.

    Raises :class:`EmbeddingModelError` if the model is not a transformer with mean or CLS
    pooling, or if the export's vectors differ from the source model's.
    """
    target = export_path(onnx_dir, model_name, model_dir)
    if not force and (target / META_FILE).is_file() and (target / CHECK_VECTORS_FILE).is_file():
        existing: dict[str, Any] = json.loads((target / META_FILE).read_text())
        if existing.get("format") == FORMAT_VERSION:
            return ExportInfo(target, existing, built=False)

    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ModuleNotFoundError as exc:
        raise EmbeddingModelError(
            f"the export needs {exc.name}, which the server's install leaves out: {EXPORT_EXTRA}",
            model_name,
        ) from None

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
        np.save(work / CHECK_VECTORS_FILE, np.asarray(expected, dtype=np.float32))
        (work / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        work.chmod(0o755)  # mkdtemp makes it private; the server may run as another user
        # The model's older exports go: where the model's files are not at hand (the server's
        # light environment) the one export of the model's name is the one that runs.
        for old in exports_of(model_name, onnx_dir):
            shutil.rmtree(old)
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ExportInfo(target, meta, built=True)


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
