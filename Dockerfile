# SomaFractalMemory API server.
#   docker build -t somafractalmemory .
#   docker run --rm -p 9595:9595 -e POSTGRES_DSN=... -e MILVUS_URI=... -e REDIS_URL=... somafractalmemory
# The container runs scripts/bootstrap.sh: migrate, wait for PostgreSQL, Milvus and Redis,
# ensure the Milvus collection, validate, then serve on 0.0.0.0:9595. It never starts without
# its stores; see docs/technical-manual/deployment.md and docker-compose.yml.
# Two stages: the ONNX export of the embedding model is made in a build stage that has torch
# (CPU build) and the model package; the image the server runs in has onnxruntime and the
# export only, no torch (see README "Install size").

# -- build stage: export the model to ONNX, checked to give the model's own vectors ----------
FROM python:3.11-slim AS onnx-build

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# torch first, from the CPU-only index: a plain `torch` from PyPI pulls the CUDA build (GBs).
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /build
COPY pyproject.toml README.md* ./
COPY src/ src/
RUN pip install --no-cache-dir "./[export]"
ENV SOMA_EMBEDDING_ONNX_DIR=/opt/somafractalmemory/onnx
RUN python -m somafractalmemory.cli embedder build

# -- the server's image: no torch -------------------------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# The package and the server's dependencies (ranges in pyproject.toml). "./[server]" is
# `.[server]` spelled as a path. README.md* : the long description, copied when present.
COPY pyproject.toml README.md* ./
COPY src/ src/
RUN pip install --no-cache-dir "./[server]"

# The export from the build stage, checked again here with this image's own onnxruntime
# against the vectors the model gave there; nothing is fetched at run time.
ENV SOMA_EMBEDDING_ONNX_DIR=/opt/somafractalmemory/onnx
COPY --from=onnx-build /opt/somafractalmemory/onnx /opt/somafractalmemory/onnx
RUN python -m somafractalmemory.cli embedder check

COPY alembic.ini ./
COPY scripts/ scripts/

# Run as an unprivileged user; its home holds whatever caches the libraries write.
# USER is numeric so that runtimes enforcing runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 soma \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/soma soma
USER 10001:10001

ENV SOMA_HOST=0.0.0.0 \
    SOMA_PORT=9595
EXPOSE 9595

# Liveness only (no store calls): readiness and store health are /readyz and /healthz.
# The slim image has no curl, hence python; bootstrap can take a while (model, stores).
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SOMA_PORT', '9595') + '/livez', timeout=4)"]

CMD ["scripts/bootstrap.sh"]
