"""The two embedding backends: the local ONNX export gives the model's own vectors.

These load the real model and its real export (``make install`` builds it into
``SOMA_EMBEDDING_ONNX_DIR``); a second export is built in a temporary directory to test
``embedder build`` itself.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from somafractalmemory.core import onnx_model
from somafractalmemory.core.embedding import Embedder, create_embedder, resolve_model_path
from somafractalmemory.core.embedding_stop import EmbeddingStopped, StopSignal
from somafractalmemory.errors import EmbeddingModelError
from somafractalmemory.settings import DEFAULT_EMBEDDING_MODEL, EmbeddingSettings

# Texts of every length, more than one batch (64) of them, in an order that is not sorted
# by length: the ONNX encoder sorts them into batches and must put each vector back.
TEXTS = [
    f"{'memory ' * (i % 17)}item {i}: Caroline met Melanie at the lake on day {i}"
    for i in range(150)
] + ["", "  spaces  ", "Zoë's café 🙂", "word " * 600]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return Path(resolve_model_path(DEFAULT_EMBEDDING_MODEL))


@pytest.fixture(scope="module")
def onnx_embedder() -> Embedder:
    return create_embedder(EmbeddingSettings(embedding_backend="onnx"))


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    return create_embedder(EmbeddingSettings(embedding_backend="torch"))


def test_onnx_and_torch_give_the_same_vectors(
    onnx_embedder: Embedder, torch_embedder: Embedder
) -> None:
    onnx_vectors = np.array(onnx_embedder.embed(TEXTS))
    torch_vectors = np.array(torch_embedder.embed(TEXTS))
    assert onnx_vectors.shape == torch_vectors.shape == (len(TEXTS), 384)
    assert np.abs(onnx_vectors - torch_vectors).max() <= onnx_model.MAX_ABS_DIFF
    assert np.allclose(np.linalg.norm(onnx_vectors, axis=1), 1.0, atol=1e-5)


def test_onnx_vectors_keep_the_order_of_the_texts(onnx_embedder: Embedder) -> None:
    one_by_one = np.array([onnx_embedder.embed_one(text) for text in TEXTS[:70]])
    batched = np.array(onnx_embedder.embed(TEXTS[:70]))
    assert np.abs(one_by_one - batched).max() <= onnx_model.MAX_ABS_DIFF


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_stop_set_before_the_embedding_stops_it(backend: str) -> None:
    embedder = create_embedder(EmbeddingSettings(embedding_backend=backend))
    stop = StopSignal()
    stop.set()
    with pytest.raises(EmbeddingStopped):
        embedder.embed_one("never embedded", stop)
    assert embedder.embed_one("embedded", StopSignal()) == pytest.approx(
        embedder.embed_one("embedded"), abs=1e-6
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


@pytest.fixture(scope="module")
def fresh_build(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> onnx_model.ExportInfo:
    """One export built by this test module, in a directory of its own, where an export of
    an older format lay: ``build`` must replace it, not reuse it."""
    onnx_dir = tmp_path_factory.mktemp("onnx")
    stale = onnx_model.export_path(onnx_dir, DEFAULT_EMBEDDING_MODEL, model_dir)
    stale.mkdir()
    (stale / onnx_model.META_FILE).write_text('{"format": 1}')
    (stale / onnx_model.ONNX_FILE).write_bytes(b"an old graph")
    return onnx_model.build(DEFAULT_EMBEDDING_MODEL, model_dir, onnx_dir)


def test_build_exports_checks_and_is_idempotent(
    model_dir: Path, fresh_build: onnx_model.ExportInfo
) -> None:
    onnx_dir = fresh_build.path.parent
    assert fresh_build.built
    assert fresh_build.meta["format"] == onnx_model.FORMAT_VERSION
    assert fresh_build.meta["check_max_abs_diff"] <= onnx_model.MAX_ABS_DIFF
    # The BERT blocks of all-MiniLM-L6-v2 (6 layers) are fused.
    assert fresh_build.meta["fused_operators"]["Attention"] == 6
    assert fresh_build.meta["source_sha256"] == onnx_model.fingerprint(model_dir)
    assert fresh_build.path.stat().st_mode & 0o777 == 0o755  # readable by the server's user
    again = onnx_model.build(DEFAULT_EMBEDDING_MODEL, model_dir, onnx_dir)
    assert (again.path, again.built) == (fresh_build.path, False)
    assert [p.name for p in onnx_dir.iterdir()] == [fresh_build.path.name]  # no build dir left
    loaded = onnx_model.load(DEFAULT_EMBEDDING_MODEL, model_dir, onnx_dir, threads=1)
    assert loaded.encode(["I like green tea"]).shape == (1, 384)


def test_a_changed_model_never_runs_on_an_old_export(
    model_dir: Path, fresh_build: onnx_model.ExportInfo, tmp_path: Path
) -> None:
    """The export is keyed by the model files' hash: edit one file and it is not found."""
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    onnx_dir = fresh_build.path.parent
    (copy / "config.json").write_text((copy / "config.json").read_text() + "\n")
    with pytest.raises(EmbeddingModelError, match="no ONNX export"):
        onnx_model.load(str(copy), copy, onnx_dir, threads=1)


def test_an_export_of_another_format_is_refused(
    model_dir: Path, fresh_build: onnx_model.ExportInfo, tmp_path: Path
) -> None:
    shutil.copytree(fresh_build.path, tmp_path / fresh_build.path.name)
    meta = tmp_path / fresh_build.path.name / onnx_model.META_FILE
    current = f'"format": {onnx_model.FORMAT_VERSION}'
    assert current in meta.read_text()
    meta.write_text(meta.read_text().replace(current, '"format": 99'))
    with pytest.raises(EmbeddingModelError, match="embedder build --force"):
        onnx_model.load(DEFAULT_EMBEDDING_MODEL, model_dir, tmp_path, threads=1)
