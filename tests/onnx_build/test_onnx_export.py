"""The ONNX export (``embedder build``): it gives the model's own vectors, as torch does.

These need torch, sentence-transformers and the model package, which the server's environment
leaves out: ``make test`` runs them in the export's build environment
(``.cache/onnx-build/venv``, ``make test-onnx-build``), with ``--confcutdir`` so that the
server suite's conftest (stores, app) is not loaded. They build exports of their own in
temporary directories.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from somafractalmemory.core import onnx_export, onnx_model
from somafractalmemory.core.embedding import Embedder, create_embedder, resolve_model_path
from somafractalmemory.core.embedding_stop import EmbeddingStopped, StopSignal
from somafractalmemory.errors import EmbeddingModelError
from somafractalmemory.settings import DEFAULT_EMBEDDING_MODEL, EmbeddingSettings

# Texts of every length, more than one batch (64) of them, not sorted by length.
TEXTS = [
    f"{'memory ' * (i % 17)}item {i}: Caroline met Melanie at the lake on day {i}"
    for i in range(150)
] + ["", "  spaces  ", "Zoë's café 🙂", "word " * 600]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    found = resolve_model_path(DEFAULT_EMBEDDING_MODEL)
    assert found is not None, "the build environment has the model package"
    return Path(found)


@pytest.fixture(scope="module")
def fresh_build(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> onnx_model.ExportInfo:
    """One export built by this test module, in a directory of its own, where an export of
    an older version lay, of the same format but without check vectors (``build`` must replace
    it, not reuse it), beside an export of an
    earlier version of the model's files (``build`` must remove it: where the model's files
    are not at hand, the one export of the model's name is the one that runs)."""
    onnx_dir = tmp_path_factory.mktemp("onnx")
    stale = onnx_model.export_path(onnx_dir, DEFAULT_EMBEDDING_MODEL, model_dir)
    stale.mkdir()
    old_format = {"format": onnx_model.FORMAT_VERSION, "model": DEFAULT_EMBEDDING_MODEL}
    (stale / onnx_model.META_FILE).write_text(json.dumps(old_format))
    (stale / onnx_model.ONNX_FILE).write_bytes(b"an old graph")
    earlier = onnx_dir / f"{onnx_model.model_slug(DEFAULT_EMBEDDING_MODEL)}-0000000000000000"
    earlier.mkdir()
    meta = {"format": onnx_model.FORMAT_VERSION, "model": DEFAULT_EMBEDDING_MODEL}
    (earlier / onnx_model.META_FILE).write_text(json.dumps(meta))
    assert len(onnx_model.exports_of(DEFAULT_EMBEDDING_MODEL, onnx_dir)) == 2
    return onnx_export.build(DEFAULT_EMBEDDING_MODEL, model_dir, onnx_dir)


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    return create_embedder(EmbeddingSettings(embedding_backend="torch"))


def test_onnx_and_torch_give_the_same_vectors(
    fresh_build: onnx_model.ExportInfo, model_dir: Path, torch_embedder: Embedder
) -> None:
    encoder = onnx_model.load(DEFAULT_EMBEDDING_MODEL, model_dir, fresh_build.path.parent, 0)
    onnx_vectors = encoder.encode(TEXTS)
    torch_vectors = np.array(torch_embedder.embed(TEXTS))
    assert onnx_vectors.shape == torch_vectors.shape == (len(TEXTS), 384)
    assert np.abs(onnx_vectors - torch_vectors).max() <= onnx_model.MAX_ABS_DIFF
    assert np.allclose(np.linalg.norm(onnx_vectors, axis=1), 1.0, atol=1e-5)


def test_the_recorded_check_vectors_are_the_models_own(
    fresh_build: onnx_model.ExportInfo, torch_embedder: Embedder
) -> None:
    """What the server checks an export against, without torch, is what torch gives."""
    recorded = np.load(fresh_build.path / onnx_model.CHECK_VECTORS_FILE)
    own = np.array(torch_embedder.embed(list(onnx_model.CHECK_TEXTS)))
    assert recorded.shape == (len(onnx_model.CHECK_TEXTS), 384)
    assert np.abs(recorded - own).max() <= 1e-6


def test_a_stop_set_before_a_torch_embedding_stops_it(torch_embedder: Embedder) -> None:
    stop = StopSignal()
    stop.set()
    with pytest.raises(EmbeddingStopped):
        torch_embedder.embed_one("never embedded", stop)
    assert torch_embedder.embed_one("embedded", StopSignal()) == pytest.approx(
        torch_embedder.embed_one("embedded"), abs=1e-6
    )


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
    again = onnx_export.build(DEFAULT_EMBEDDING_MODEL, model_dir, onnx_dir)
    assert (again.path, again.built) == (fresh_build.path, False)
    # No build directory left, and neither the stale nor the earlier export.
    assert [p.name for p in onnx_dir.iterdir()] == [fresh_build.path.name]
    assert onnx_model.find_export(DEFAULT_EMBEDDING_MODEL, None, onnx_dir) == fresh_build.path
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
