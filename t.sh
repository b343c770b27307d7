#!/bin/bash
cd /work/wt-lightinstall
export POSTGRES_DSN=postgresql://postgres@127.0.0.1:5432/soma_test_lightinstall
export MILVUS_COLLECTION=soma_test_lightinstall_memories REDIS_URL=redis://127.0.0.1:6379/7
export MILVUS_URI=http://127.0.0.1:19530 PYTHONPATH=src:.
export SOMA_EMBEDDING_ONNX_DIR=/tmp/li-onnx
.venv/bin/python scripts/ensure_database.py
exec .venv/bin/python -m pytest -p no:cacheprovider -q "$@"
