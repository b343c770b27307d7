"""Pure helpers of the service: what text is embedded, listing cursors, settings safety."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from somafractalmemory.core.memory_input import text_to_embed
from somafractalmemory.core.service import decode_cursor, encode_cursor
from somafractalmemory.errors import InvalidInputError
from somafractalmemory.settings import Settings, redact_url


def test_text_field_is_embedded_else_the_payload_as_json() -> None:
    assert text_to_embed({"text": "hello", "x": 1}) == "hello"
    assert text_to_embed({"b": 2, "a": "é"}) == '{"a": "é", "b": 2}'


@pytest.mark.parametrize("payload", [{}, {"text": ""}, {"text": "  "}, {"text": 5}])
def test_missing_text_is_refused(payload: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        text_to_embed(payload)


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor(12345)) == 12345
    assert decode_cursor(None) == 0
    for bad in ("zzz", encode_cursor(1)[:-1] + "!", "bTp4"):
        with pytest.raises(InvalidInputError) as caught:
            decode_cursor(bad)
        assert caught.value.field == "cursor"


@pytest.mark.usefixtures("no_store_settings")
def test_store_addresses_are_required() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings()  # type: ignore[call-arg]
    missing = {str(e["loc"][0]) for e in caught.value.errors()}
    assert missing == {"POSTGRES_DSN", "MILVUS_URI", "REDIS_URL"}


def test_milvus_lite_file_paths_are_refused() -> None:
    with pytest.raises(ValidationError, match="server address"):
        Settings(POSTGRES_DSN="postgresql://x/y", MILVUS_URI="./milvus.db", REDIS_URL="redis://x")


def test_addresses_never_show_passwords() -> None:
    assert redact_url("postgresql://u:secret@db:5432/soma") == "postgresql://u@db:5432/soma"
    assert "secret" not in redact_url("redis://:secret@cache:6379/0")
    settings = Settings(
        POSTGRES_DSN="postgresql://u:pw@h:1/d", MILVUS_URI="http://m:19530", REDIS_URL="redis://r"
    )
    assert "pw" not in settings.postgres_address
    assert "pw" not in repr(settings)
